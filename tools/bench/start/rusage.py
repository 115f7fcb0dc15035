#!/usr/bin/python3
# A child-process timer for tools/bench/start: Node cannot give a child's own
# CPU time (process.resourceUsage is the caller's, and libuv reaps children
# without rusage), so this spawns each program and waits with wait4.
#
# One JSON request a line on stdin: {"argv": [...], "env": {...}, "cwd": "..."};
# one JSON answer a line on stdout: {"wall": ms, "cpu": ms (user+system),
# "status": exit status or -signal, "stderr": the last 2 kB of stderr}.
import json
import os
import sys
import tempfile
import time

def run(req):
    err = tempfile.TemporaryFile()
    devnull = os.open(os.devnull, os.O_RDWR)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
    ]
    start = time.monotonic_ns()
    pid = os.posix_spawn(req["argv"][0], req["argv"], req.get("env", os.environ), file_actions=actions)
    _, status, ru = os.wait4(pid, 0)
    wall = (time.monotonic_ns() - start) / 1e6
    os.close(devnull)
    err.seek(0)
    text = err.read()[-2048:].decode("utf8", "replace")
    err.close()
    code = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "cpu": (ru.ru_utime + ru.ru_stime) * 1e3, "status": code, "stderr": text}

for line in sys.stdin:
    try:
        answer = run(json.loads(line))
    except Exception as e:  # a bad request is reported, the server goes on
        answer = {"error": str(e)}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
