"""draft problems: each campaign version keeps the problems found when it was saved, so a
draft saved half-built says what is left to fix

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('campaign_versions', sa.Column('problems', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('campaign_versions', 'problems')
