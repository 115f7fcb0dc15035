/*
 * sd spawn-program interpreter, aarch64. Same program layout and behaviour
 * as x86_64.S (read that file's header first).
 */

    .text
    .globl sd_clone3
    .globl sd_run

/* long sd_clone3(struct clone_args *args, size_t size, void *program) */
sd_clone3:
    mov     x8, #435            /* __NR_clone3 */
    svc     #0                  /* x2 (program) survives the call */
    cbz     x0, 1f
    ret
1:  mov     x0, x2
    /* fall through into sd_run */

/* void sd_run(void *program), never returns */
sd_run:
    mov     x19, x0             /* program */
    mov     x20, #0             /* step index */
    add     x21, x19, #528      /* current step */
    add     x23, x19, #16       /* slots */

.Lnext_step:
    ldr     x9, [x19]
    cmp     x20, x9
    b.hs    .Lend

    ldr     w22, [x21, #56]     /* flags */

    .macro load_arg i, reg
    ldr     \reg, [x21, #(8+8*\i)]
    tbz     w22, #(8+\i), .Larg_done_\i
    and     \reg, \reg, #63
    ldr     \reg, [x23, \reg, lsl #3]
.Larg_done_\i:
    .endm

    load_arg 0, x0
    load_arg 1, x1
    load_arg 2, x2
    load_arg 3, x3
    load_arg 4, x4
    load_arg 5, x5

    ldr     x8, [x21]
    svc     #0

    tbz     w22, #1, 1f         /* store the result, also a failed one */
    ldr     w9, [x21, #60]
    and     x9, x9, #63
    str     x0, [x23, x9, lsl #3]
1:
    tbz     w22, #2, 2f         /* the parent of a fork: on a positive */
    cmp     x0, #0              /* result, go on at step flags >> 16 */
    b.le    2f
    lsr     w20, w22, #16
    add     x21, x19, #528
    add     x21, x21, x20, lsl #6
    b       .Lnext_step
2:
    cmn     x0, #4095           /* carry set: x0 in -4095..-1 */
    b.lo    .Lstep_ok
    tbz     w22, #0, .Lfail

.Lstep_ok:
    add     x20, x20, #1
    add     x21, x21, #64
    b       .Lnext_step

.Lfail:
    neg     w0, w0
    sub     sp, sp, #16
    str     w20, [sp]
    str     w0, [sp, #4]
    ldr     x0, [x19, #8]
    mov     x1, sp
    mov     x2, #8
    mov     x8, #64             /* __NR_write */
    svc     #0
    mov     x0, #127
    b       .Lexit

.Lend:
    mov     x0, #0
.Lexit:
    mov     x8, #94             /* __NR_exit_group */
    svc     #0
    brk     #0
