/*
 * sd stub init, x86_64: PID 1 of a container run with --as-pid2.
 *
 *   sd-stub-init PATH ARGV0 [ARG...]
 *
 * PID 1 of a PID namespace has jobs a normal program does not expect: it
 * inherits every orphan and must reap it, and the kernel drops signals sent
 * to it for which it has no handler. This stub does those jobs so that the
 * real payload can run as PID 2:
 *
 *   1. Block every signal (rt_sigprocmask). Blocked signals are queued, never
 *      dropped, also for PID 1.
 *   2. Fork (clone with SIGCHLD). The child unblocks all signals and execs
 *      PATH with argv ARGV0 [ARG...] (ARGV0 is kept, so a login shell's
 *      "-sh" survives) and the stub's own environment. Signal dispositions
 *      are left as the stub got them (exec reset them to SIG_DFL, the spawn
 *      program reset ignored ones). If execve fails, the child writes
 *      "sd-stub-init: cannot execute PATH: errno N" to fd 2 and exits 127.
 *   3. The parent waits for any signal (rt_sigtimedwait on the full set).
 *      SIGCHLD: reap with wait4(-1, WNOHANG) until nothing is left to reap;
 *      once the payload is reaped, exit with its status: its exit code, or
 *      128 + the signal that killed it. Other processes of the namespace
 *      are killed by the kernel when PID 1 exits.
 *      Any other signal: forward it to the payload with kill(). (SIGKILL and
 *      SIGSTOP never reach the stub; SIGKILL from outside ends the namespace.)
 *
 * No libc, no data section, nothing but the stack: native/build.mjs links it
 * into a tiny static ELF whose bytes are committed in
 * src/spawn/stub-init.generated.ts. Run from a sealed memfd by execveat.
 */

    .text
    .globl _start
_start:
    mov     (%rsp), %r12            /* argc */
    lea     8(%rsp), %r13           /* argv */
    lea     16(%rsp,%r12,8), %r14   /* envp: past argv's NULL */
    cmp     $3, %r12
    jb      .Lusage

    sub     $16, %rsp               /* 0: sigset, 8: wait status */
    movq    $-1, (%rsp)             /* every signal */
    mov     $2, %edi                /* SIG_SETMASK */
    mov     %rsp, %rsi
    xor     %edx, %edx
    mov     $8, %r10d
    mov     $14, %eax               /* __NR_rt_sigprocmask */
    syscall

    mov     $17, %edi               /* clone(SIGCHLD, 0, 0, 0, 0): fork */
    xor     %esi, %esi
    xor     %edx, %edx
    xor     %r10d, %r10d
    xor     %r8d, %r8d
    mov     $56, %eax               /* __NR_clone */
    syscall
    test    %rax, %rax
    jz      .Lchild
    js      .Lfork_failed
    mov     %rax, %r15              /* the payload's pid */

.Lwait:
    mov     %rsp, %rdi              /* every signal */
    xor     %esi, %esi              /* no siginfo */
    xor     %edx, %edx              /* no timeout */
    mov     $8, %r10d
    mov     $128, %eax              /* __NR_rt_sigtimedwait */
    syscall
    test    %rax, %rax
    js      .Lwait                  /* EINTR */
    cmp     $17, %eax               /* SIGCHLD */
    je      .Lreap
    mov     %r15, %rdi              /* forward it */
    mov     %rax, %rsi
    mov     $62, %eax               /* __NR_kill */
    syscall
    jmp     .Lwait

.Lreap:
    mov     $-1, %rdi               /* any child */
    lea     8(%rsp), %rsi
    mov     $1, %edx                /* WNOHANG */
    xor     %r10d, %r10d
    mov     $61, %eax               /* __NR_wait4 */
    syscall
    test    %rax, %rax
    jle     .Lwait                  /* none left exited (0) or ECHILD */
    cmp     %r15, %rax
    jne     .Lreap                  /* an orphan: reaped, next */

    mov     8(%rsp), %edi           /* the payload: exit with its status */
    mov     %edi, %eax
    and     $0x7f, %eax             /* WTERMSIG */
    jz      1f
    lea     128(%rax), %edi         /* killed: 128 + signal */
    jmp     .Lexit
1:  shr     $8, %edi                /* WEXITSTATUS */
    and     $0xff, %edi
.Lexit:
    mov     $231, %eax              /* __NR_exit_group */
    syscall
    hlt

.Lchild:
    movq    $0, (%rsp)              /* no signal blocked */
    mov     $2, %edi                /* SIG_SETMASK */
    mov     %rsp, %rsi
    xor     %edx, %edx
    mov     $8, %r10d
    mov     $14, %eax               /* __NR_rt_sigprocmask */
    syscall
    mov     8(%r13), %rdi           /* PATH */
    lea     16(%r13), %rsi          /* ARGV0 [ARG...] */
    mov     %r14, %rdx              /* envp */
    mov     $59, %eax               /* __NR_execve */
    syscall
    mov     %rax, %rbx
    lea     .Lmsg_exec(%rip), %rsi
    mov     8(%r13), %rbp
    jmp     .Ldie

.Lfork_failed:
    mov     %rax, %rbx
    lea     .Lmsg_fork(%rip), %rsi
    lea     .Lempty(%rip), %rbp

/* Writes "<rsi><rbp>: errno <-rbx>\n" to fd 2 and exits 127. */
.Ldie:
    call    .Lputs
    mov     %rbp, %rsi
    call    .Lputs
    lea     .Lmsg_errno(%rip), %rsi
    call    .Lputs
    mov     %ebx, %eax
    neg     %eax
    movw    $0x000a, 14(%rsp)       /* "\n\0", digits before it */
    lea     14(%rsp), %rsi
    mov     $10, %ecx
1:  xor     %edx, %edx
    div     %ecx
    add     $'0', %dl
    dec     %rsi
    mov     %dl, (%rsi)
    test    %eax, %eax
    jnz     1b
    call    .Lputs
    mov     $127, %edi
    jmp     .Lexit

.Lusage:
    lea     .Lmsg_usage(%rip), %rsi
    call    .Lputs
    mov     $127, %edi
    jmp     .Lexit

/* Writes the NUL-terminated string at rsi to fd 2. */
.Lputs:
    xor     %edx, %edx
1:  cmpb    $0, (%rsi,%rdx)
    je      2f
    inc     %rdx
    jmp     1b
2:  mov     $2, %edi
    mov     $1, %eax                /* __NR_write */
    syscall
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
