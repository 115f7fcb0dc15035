/*
 * sd spawn-program interpreter, x86_64.
 *
 * Node cannot run JavaScript in a forked child (its heap is MADV_DONTFORK),
 * so the child of a clone runs this instead: it executes a list of system
 * calls prepared by JavaScript, with every string and struct already in
 * memory, and normally ends in execve. Position independent, no libc, no
 * data of its own: it is copied into an executable page at run time.
 *
 * Program layout (little endian, see src/spawn/program.ts):
 *   0    u64  number of steps
 *   8    u64  report fd: on failure {u32 step, u32 errno} is written here
 *   16   u64  slots[64]: results of earlier steps
 *   528  steps, 64 bytes each:
 *          0  u64 syscall number
 *          8  u64 args[6]
 *          56 u32 flags: bit 0  ignore a failure and go on
 *                        bit 1  store the result in slots[slot]
 *                        bit 2  on a result > 0 (the parent of a fork),
 *                               go on at step bits 16..31 instead
 *                        bit 8+i  args[i] is a slot index, use slots[args[i]]
 *          60 u32 slot
 *
 * A failing step (result in -4095..-1) that is not ignored writes its index
 * and errno to the report fd and exits with status 127. Running past the last
 * step exits with status 0. The report fd is close-on-exec, so the parent
 * reads EOF when execve succeeded.
 */

    .text
    .globl sd_clone3
    .globl sd_run

/*
 * long sd_clone3(struct clone_args *args, size_t size, void *program)
 * The parent gets clone3's result; the child runs the program and never
 * returns. The child keeps the parent's stack pointer: without CLONE_VM its
 * stack is a private copy, and it never returns into the caller.
 */
sd_clone3:
    mov     $435, %eax          /* __NR_clone3 */
    syscall                     /* rdx (program) survives the syscall */
    test    %rax, %rax
    jz      1f
    ret
1:  mov     %rdx, %rdi
    and     $-16, %rsp
    /* fall through into sd_run */

/* void sd_run(void *program), never returns */
sd_run:
    mov     %rdi, %rbx          /* program */
    xor     %r12d, %r12d        /* step index */
    lea     528(%rbx), %r13     /* current step */

.Lnext_step:
    cmp     (%rbx), %r12
    jae     .Lend

    mov     56(%r13), %r14d     /* flags */

    .macro load_arg i, reg
    mov     8+8*\i(%r13), \reg
    bt      $(8+\i), %r14d
    jnc     .Larg_done_\i
    and     $63, \reg
    mov     16(%rbx,\reg,8), \reg
.Larg_done_\i:
    .endm

    load_arg 0, %rdi
    load_arg 1, %rsi
    load_arg 2, %rdx
    load_arg 3, %r10
    load_arg 4, %r8
    load_arg 5, %r9

    mov     (%r13), %rax
    syscall

    bt      $1, %r14d           /* store the result, also a failed one */
    jnc     1f
    mov     60(%r13), %ecx
    and     $63, %ecx
    mov     %rax, 16(%rbx,%rcx,8)
1:
    bt      $2, %r14d           /* the parent of a fork: on a positive */
    jnc     2f                  /* result, go on at step flags >> 16 */
    test    %rax, %rax
    jle     2f
    mov     %r14d, %r12d
    shr     $16, %r12d
    mov     %r12, %r13
    shl     $6, %r13
    lea     528(%rbx,%r13), %r13
    jmp     .Lnext_step
2:
    cmp     $-4095, %rax
    jb      .Lstep_ok
    bt      $0, %r14d
    jnc     .Lfail

.Lstep_ok:
    inc     %r12
    add     $64, %r13
    jmp     .Lnext_step

.Lfail:
    neg     %eax
    sub     $16, %rsp
    mov     %r12d, (%rsp)
    mov     %eax, 4(%rsp)
    mov     8(%rbx), %rdi
    mov     %rsp, %rsi
    mov     $8, %edx
    mov     $1, %eax            /* __NR_write */
    syscall
    mov     $127, %edi
    jmp     .Lexit

.Lend:
    xor     %edi, %edi
.Lexit:
    mov     $231, %eax          /* __NR_exit_group */
    syscall
    hlt
