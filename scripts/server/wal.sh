# pgha server: WAL archiving (sourced by entrypoint.sh). PostgreSQL runs these itself, on every
# server (archive_mode = always; components/templates.ts renders the commands):
#   entrypoint.sh wal archive <path> <file>   archive_command: copy PGDATA/<path> to
#                                             $PGHA_ARCHIVE_DIR/wal/<file>, never overwrite
#   entrypoint.sh wal restore <file> <path>   restore_command: copy $PGHA_ARCHIVE_DIR/wal/<file>
#                                             (or the restore's staging directory) to <path>

# archive_command (cwd = PGDATA). Copy to a temp file, fsync, then hard-link
# into place: link(2) fails if the name exists, so nothing is ever overwritten.
wal_archive() {
	[ $# -eq 2 ] || die "usage: entrypoint.sh wal archive <path> <file>"
	_src=$1 _name=$2
	case $_name in '' | */* | .*) die "wal archive: invalid WAL file name '$_name'" ;; esac
	_dir=$PGHA_ARCHIVE_DIR/wal
	_dest=$_dir/$_name
	if [ -e "$_dest" ]; then archive_exists "$_src" "$_dest"; fi
	_tmp=$_dir/.$_name.$$.tmp
	if ! cp "$_src" "$_tmp"; then rm -f "$_tmp"; die "wal archive: cannot copy $_src to $_tmp"; fi
	fsync_path "$_tmp"
	if ln "$_tmp" "$_dest" 2>/dev/null; then
		rm -f "$_tmp"
	elif [ -e "$_dest" ]; then
		rm -f "$_tmp"
		archive_exists "$_src" "$_dest"
	else
		# no hard links on this file system: rename (single archiver per volume)
		mv "$_tmp" "$_dest"
	fi
	fsync_path "$_dir"
	exit 0
}

archive_exists() {
	if cmp -s "$1" "$2"; then
		exit 0 # archived already (e.g. by this server while it was a standby)
	fi
	case $1 in /*) _abs=$1 ;; *) _abs=$(pwd)/$1 ;; esac
	log "ARCHIVE CONFLICT: refusing to overwrite $2: it differs from $_abs, which PostgreSQL asks to archive under the same name"
	log "ARCHIVE CONFLICT: WAL archiving is stuck until an operator compares $_abs and $2 and removes the wrong one"
	exit 1
}

# restore_command: exit 1 silently when the file is not archived (normal at
# the end of recovery and when probing for timeline history files).
wal_restore() {
	[ $# -eq 2 ] || die "usage: entrypoint.sh wal restore <file> <path>"
	_src=$PGHA_ARCHIVE_DIR/wal/$1
	# During a restore or a clone, WAL this archive lacks (copied from the
	# archive that holds the base backup) waits in the data volume.
	[ -f "$_src" ] || _src=$PGHA_DATA_DIR/pgha-restore-wal/$1
	[ -f "$_src" ] || exit 1
	cp "$_src" "$2"
}

wal_cmd() {
	case ${1:-} in
	archive) shift; wal_archive "$@" ;;
	restore) shift; wal_restore "$@" ;;
	*) die "usage: entrypoint.sh wal archive <path> <file> | wal restore <file> <path>" ;;
	esac
}
