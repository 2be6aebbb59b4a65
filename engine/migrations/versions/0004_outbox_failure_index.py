"""outbox: a partial index on failed and uncertain messages (counted by /metrics)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 08:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

WHERE = "status IN ('failed', 'uncertain')"


def upgrade() -> None:
    op.create_index("ix_outbox_failures", "outbox", ["status"], sqlite_where=sa.text(WHERE),
                    postgresql_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index("ix_outbox_failures", table_name="outbox")
