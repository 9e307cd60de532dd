"""Alembic runs this for every command: the migrations run on the connection the store hands over
(forager.store.migrations.upgrade), inside its transaction and under its lock; never on a URL of their own."""

from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():  # the caller's transaction: Alembic neither begins nor commits one here
    context.run_migrations()
