/*
 * sd stub init, aarch64: PID 1 of a container run with --as-pid2.
 * The same program as stub-init-x86_64.S; its header documents the behaviour:
 *
 *   sd-stub-init PATH ARGV0 [ARG...]
 *
 * block every signal; fork a child that unblocks them and execs PATH with
 * ARGV0 [ARG...] and our environment (on failure: a message on fd 2, exit
 * 127); wait for signals: SIGCHLD reaps every exited child and ends with the
 * payload's status (code, or 128 + signal) once the payload is reaped; any
 * other signal is forwarded to the payload.
 */

    .text
    .globl _start
_start:
    ldr     x19, [sp]               /* argc */
    add     x20, sp, #8             /* argv */
    add     x21, x20, x19, lsl #3
    add     x21, x21, #8            /* envp: past argv's NULL */
    cmp     x19, #3
    b.lo    .Lusage

    sub     sp, sp, #16             /* 0: sigset, 8: wait status */
    mov     x9, #-1
    str     x9, [sp]                /* every signal */
    mov     x0, #2                  /* SIG_SETMASK */
    mov     x1, sp
    mov     x2, #0
    mov     x3, #8
    mov     x8, #135                /* __NR_rt_sigprocmask */
    svc     #0

    mov     x0, #17                 /* clone(SIGCHLD, 0, 0, 0, 0): fork */
    mov     x1, #0
    mov     x2, #0
    mov     x3, #0
    mov     x4, #0
    mov     x8, #220                /* __NR_clone */
    svc     #0
    cbz     x0, .Lchild
    tbnz    x0, #63, .Lfork_failed
    mov     x22, x0                 /* the payload's pid */

.Lwait:
    mov     x0, sp                  /* every signal */
    mov     x1, #0                  /* no siginfo */
    mov     x2, #0                  /* no timeout */
    mov     x3, #8
    mov     x8, #137                /* __NR_rt_sigtimedwait */
    svc     #0
    tbnz    x0, #63, .Lwait         /* EINTR */
    cmp     x0, #17                 /* SIGCHLD */
    b.eq    .Lreap
    mov     x1, x0                  /* forward it */
    mov     x0, x22
    mov     x8, #129                /* __NR_kill */
    svc     #0
    b       .Lwait

.Lreap:
    mov     x0, #-1                 /* any child */
    add     x1, sp, #8
    mov     x2, #1                  /* WNOHANG */
    mov     x3, #0
    mov     x8, #260                /* __NR_wait4 */
    svc     #0
    cmp     x0, #0
    b.le    .Lwait                  /* none left exited (0) or ECHILD */
    cmp     x0, x22
    b.ne    .Lreap                  /* an orphan: reaped, next */

    ldr     w1, [sp, #8]            /* the payload: exit with its status */
    ands    w0, w1, #0x7f           /* WTERMSIG */
    b.eq    1f
    add     w0, w0, #128            /* killed: 128 + signal */
    b       .Lexit
1:  ubfx    w0, w1, #8, #8          /* WEXITSTATUS */
.Lexit:
    mov     x8, #94                 /* __NR_exit_group */
    svc     #0
    brk     #0

.Lchild:
    str     xzr, [sp]               /* no signal blocked */
    mov     x0, #2                  /* SIG_SETMASK */
    mov     x1, sp
    mov     x2, #0
    mov     x3, #8
    mov     x8, #135                /* __NR_rt_sigprocmask */
    svc     #0
    ldr     x0, [x20, #8]           /* PATH */
    add     x1, x20, #16            /* ARGV0 [ARG...] */
    mov     x2, x21                 /* envp */
    mov     x8, #221                /* __NR_execve */
    svc     #0
    mov     x23, x0
    adr     x1, .Lmsg_exec
    ldr     x24, [x20, #8]
    b       .Ldie

.Lfork_failed:
    mov     x23, x0
    adr     x1, .Lmsg_fork
    adr     x24, .Lempty

/* Writes "<x1><x24>: errno <-x23>\n" to fd 2 and exits 127. */
.Ldie:
    bl      .Lputs
    mov     x1, x24
    bl      .Lputs
    adr     x1, .Lmsg_errno
    bl      .Lputs
    neg     w9, w23
    mov     w10, #0x000a            /* "\n\0", digits before it */
    strh    w10, [sp, #14]
    add     x1, sp, #14
    mov     w11, #10
1:  udiv    w12, w9, w11
    msub    w13, w12, w11, w9       /* w9 % 10 */
    add     w13, w13, #'0'
    strb    w13, [x1, #-1]!
    mov     w9, w12
    cbnz    w9, 1b
    bl      .Lputs
    mov     x0, #127
    b       .Lexit

.Lusage:
    adr     x1, .Lmsg_usage
    bl      .Lputs
    mov     x0, #127
    b       .Lexit

/* Writes the NUL-terminated string at x1 to fd 2. */
.Lputs:
    mov     x2, #0
1:  ldrb    w9, [x1, x2]
    cbz     w9, 2f
    add     x2, x2, #1
    b       1b
2:  mov     x0, #2
    mov     x8, #64                 /* __NR_write */
    svc     #0
    ret

.Lmsg_usage:
    .asciz  "usage: sd-stub-init PATH ARGV0 [ARG...]\n"
.Lmsg_exec:
    .asciz  "sd-stub-init: cannot execute "
.Lmsg_fork:
    .ascii  "sd-stub-init: cannot fork"
.Lempty:
    .byte   0
.Lmsg_errno:
    .asciz  ": errno "
