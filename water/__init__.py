"""Water control: the modes that drive a field's water gates (manual, schedule,
hold depth) and the log of every decision."""
