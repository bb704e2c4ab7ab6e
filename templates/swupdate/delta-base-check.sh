	# the running slot must hold the release this delta was made from: SWUpdate's @HANDLER@
	# handler never checks its base and would write garbage from another one. Hashed: every byte
	# the base's devices are guaranteed to hold (@BASE_WHAT@), in order.
	BASE=@BASE@
	if [ ! -r "$BASE" ]; then
		echo "otapack: delta refused: cannot read its base $BASE; nothing was written" >&2
		exit 1
	fi
	got=$(while read -r bs skip count; do
		dd if="$BASE" bs="$bs" skip="$skip" count="$count" 2>/dev/null
	done <<'OTAPACK_RANGES' | sha256sum | cut -d' ' -f1
@RANGES@
OTAPACK_RANGES
)
	if [ "$got" != "@BASE_SHA256@" ]; then
		# one line, short enough for one line of SWUpdate's log (255 characters)
		echo "otapack: delta refused: $BASE is not @BASE_NAME@, the release it was made from (data sha256 $(echo "$got" | cut -c1-12).. not @BASE_SHORT@..); nothing was written" >&2
		echo "otapack: the @BASE_BYTES@ data bytes of $BASE hash to $got; the delta needs @BASE_SHA256@" >&2
		exit 1
	fi
	echo "otapack: base check passed: $BASE holds @BASE_NAME@"
