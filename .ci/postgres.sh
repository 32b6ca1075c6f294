# Starts the Debian PostgreSQL cluster (creating one if needed) and a role for the tests.
# Sourced by .ci/run; usable by hand: `. .ci/postgres.sh && start_postgres`.
PGPORT_CI="${PGPORT_CI:-5432}"
# Generated per run: no password lives in the repository.
PGPASSWORD_CI="${PGPASSWORD_CI:-$(openssl rand -hex 16)}"
start_postgres() {
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q .; then
    pg_createcluster "$version" main -p "$PGPORT_CI" >/dev/null
  fi
  local cluster
  cluster=$(pg_lsclusters -h | head -n 1)
  local ver name port status
  read -r ver name port status _ <<<"$cluster"
  PGPORT_CI="$port"
  if [ "$status" != "online" ]; then pg_ctlcluster "$ver" "$name" start; fi
  for _ in $(seq 1 30); do
    su postgres -c "pg_isready -q -p $PGPORT_CI" && break
    sleep 1
  done
  su postgres -c "psql -q -p $PGPORT_CI -v ON_ERROR_STOP=1" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bulwark') THEN
    CREATE ROLE bulwark LOGIN CREATEDB;
  END IF;
END \$\$;
ALTER ROLE bulwark PASSWORD '${PGPASSWORD_CI}';
SQL
}
