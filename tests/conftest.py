from tests.fix_stack import api, ingest, platform  # noqa: F401 - fixtures
