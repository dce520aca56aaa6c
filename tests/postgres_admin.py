"""PostgreSQL administration for tests: the server URL comes from TEEFLOW_TEST_POSTGRES_URL."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import URL

POSTGRES_ENV = "TEEFLOW_TEST_POSTGRES_URL"


def admin_execute(admin_url: URL, *statements: str) -> None:
    """Run ``statements`` outside a transaction (CREATE/DROP SCHEMA ...)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
