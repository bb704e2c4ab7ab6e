// A 352-byte fake arm64 Linux "Image" for boot tests, so U-Boot's booti/sysboot can be proven
// without a real kernel: valid arm64 Image header (magic "ARMd"), code that prints
// "FAKE-KERNEL: started by booti" and the command line from "root=" on (found by scanning the
// device tree U-Boot passes in x0) to the PL011 UART at 0x09000000, then PSCI SYSTEM_OFF.
// Assembled once with: llvm-mc -triple=aarch64 -filetype=obj k.s -o k.o && llvm-objcopy -O binary -j .text k.o k.bin
// Source (kept here so the bytes can be rebuilt and reviewed):
//   // Fake arm64 "kernel" for boot tests: prints a banner and the kernel command line from "root=" on,
//   // found by scanning the device tree U-Boot passes in x0, then powers the machine off through
//   // PSCI SYSTEM_OFF (hvc on QEMU virt without EL2/EL3).
//   .text
//   .globl _start
//   _start:
//     b code                       // code0
//     .word 0                      // code1
//     .quad 0x80000                // text_offset
//     .quad 0x10000                // image_size
//     .quad 0xa                    // flags: LE, 4K pages, anywhere
//     .quad 0, 0, 0                // res2..res4
//     .word 0x644d5241             // magic ARM\x64
//     .word 0                      // res5
//   code:
//     mov x20, x0                  // dtb
//     movz x2, #0x0900, lsl #16    // PL011 data register 0x09000000
//     adr x1, banner
//     bl puts
//     // scan the dtb (size = BE32 at +4) for "root="
//     ldr w4, [x20, #4]
//     rev w4, w4
//     add x5, x20, x4              // end
//     mov x6, x20
//   scan:
//     cmp x6, x5
//     b.hs notfound
//     ldrb w7, [x6]
//     cmp w7, #'r'
//     b.ne next
//     ldrb w7, [x6, #1]
//     cmp w7, #'o'
//     b.ne next
//     ldrb w7, [x6, #2]
//     cmp w7, #'o'
//     b.ne next
//     ldrb w7, [x6, #3]
//     cmp w7, #'t'
//     b.ne next
//     ldrb w7, [x6, #4]
//     cmp w7, #'='
//     b.ne next
//     b found
//   next:
//     add x6, x6, #1
//     b scan
//   found:
//     adr x1, cmdl
//     bl puts
//     mov x1, x6
//     bl puts
//     adr x1, nl
//     bl puts
//     b off
//   notfound:
//     adr x1, none
//     bl puts
//   off:
//     movz x0, #0x0008
//     movk x0, #0x8400, lsl #16    // PSCI SYSTEM_OFF
//     hvc #0
//     smc #0
//   hang:
//     b hang
//   puts:                           // x1 = string, x2 = uart
//     ldrb w3, [x1], #1
//     cbz w3, 1f
//     str w3, [x2]
//     b puts
//   1:
//     ret
//   banner: .asciz "\nFAKE-KERNEL: started by booti\n"
//   cmdl:   .asciz "FAKE-KERNEL: cmdline: "
//   nl:     .asciz "\n"
//   none:   .asciz "FAKE-KERNEL: no root= in the device tree\n"
//   .balign 16

const B64 =
  'EAAAFAAAAAAAAAgAAAAAAAAAAQAAAAAACgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABB' +
  'Uk1kAAAAAPQDAKoCIKHSoQUAECcAAJSEBkC5hAjAWoUCBIvmAxSq3wAF60IDAFTHAEA5/8gBccEB' +
  'AFTHBEA5/7wBcWEBAFTHCEA5/7wBcQEBAFTHDEA5/9ABcaEAAFTHEEA5//QAcUEAAFQDAAAUxgQA' +
  'ke3//xdhAwAQDQAAlOEDBqoLAACUgQMAcAkAAJQDAAAUQQMAMAYAAJQAAYDSAICw8gIAANQDAADU' +
  'AAAAFCMUQDhjAAA0QwAAuf3//xfAA1/WCkZBS0UtS0VSTkVMOiBzdGFydGVkIGJ5IGJvb3RpCgBG' +
  'QUtFLUtFUk5FTDogY21kbGluZTogAAoARkFLRS1LRVJORUw6IG5vIHJvb3Q9IGluIHRoZSBkZXZp' +
  'Y2UgdHJlZQoAAA==';

export const FAKE_ARM64_KERNEL: Buffer = Buffer.from(B64, 'base64');
