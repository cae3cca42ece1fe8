from tests.fix_stack import api, ingest, platform, scratch_db  # noqa: F401 - fixtures
