	# the written slot must be the new release, byte for byte (SWUpdate's readback handler keeps
	# sizes in 32 bits, so images of 4 GiB and more are checked here)
	TARGET=@TARGET@
	got=$(head -c @SIZE@ "$TARGET" | sha256sum | cut -d' ' -f1)
	if [ "$got" != "@SHA256@" ]; then
		echo "otapack: the written slot $TARGET does not read back as @NAME@ (sha256 $(echo "$got" | cut -c1-12).. not @SHORT@..); boot environment unchanged" >&2
		exit 1
	fi
	echo "otapack: $TARGET holds @NAME@ (sha256 checked)"
