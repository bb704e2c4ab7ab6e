// The time --reproducible uses when SOURCE_DATE_EPOCH is not set: 2024-01-01T00:00:00Z.
// --reproducible alone must give byte-identical outputs, so every time otapack would otherwise
// take from the clock (ext4 and FAT timestamps, the U-Boot script header, the CMS signing time)
// needs a value that does not depend on the run. A constant, not the input's mtime: mtimes
// change with every checkout, copy or download of the same bytes. Not 0: e2fsprogs takes a fake
// time of 0 as "use the clock", and FAT cannot store dates before 1980. In the past, so a device
// whose clock is right never finds a filesystem "last written in the future" (README,
// "Reproducible outputs").
export const REPRODUCIBLE_EPOCH = 1704067200;
