#!/bin/sh
# The HA stack's replica: on the first start a copy of the primary ("postgres") made with pg_basebackup -R
# (standby.signal and primary_conninfo written), then PostgreSQL as a hot standby streaming from it.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres -U "$POSTGRES_USER" -d "$POSTGRES_DB"; do sleep 1; done
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  su-exec postgres env PGPASSWORD="$POSTGRES_PASSWORD" pg_basebackup -h postgres -U "$POSTGRES_USER" -D "$PGDATA" -R -X stream --checkpoint=fast
fi
exec su-exec postgres postgres -c hba_file=/etc/pgbun-ha/pg_hba.conf
