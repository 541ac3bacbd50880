"""A PostgreSQL schema of its own for each view-store test."""

import uuid

import psycopg

from deploy.postgres.local_postgres import LocalPostgres


def postgres_schema_url(server: LocalPostgres) -> str:
    """A URL for a new, empty schema: far quicker than a database, and it checks that the view
    follows the search_path, as deployments sharing a database would set it."""
    schema = f"view_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server.url, autocommit=True) as pg:
        pg.execute(f"CREATE SCHEMA {schema}".encode())
    return f"{server.url}?options=-csearch_path%3D{schema}"
