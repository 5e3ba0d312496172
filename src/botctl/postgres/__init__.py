"""PostgreSQL behind botctl's storage seam (`botctl.store`): imported only when a home's database URL is
PostgreSQL, so a SQLite home never loads the driver.

connection.py  PgConnection: the subset of `sqlite3.Connection` the library uses (execute, executemany,
               in_transaction, close), `?` placeholders translated, psycopg errors raised as the DB-API
               classes `sqlite3` names (so `except store.IntegrityError` means the same on both), write
               transactions serialised by one advisory lock (what `BEGIN IMMEDIATE` is on SQLite)
schema.py      the numbered migrations in PostgreSQL's dialect (versions in `schema_versions`)
"""
