# pidfile.sh: sourced by the scripts that run a local server for the tests (local-aws.sh,
# local-seaweedfs.sh).
#
#   pid_running FILE   whether the process whose pid FILE holds is alive
#   stop_pid FILE      stops that process (TERM, up to 5 s for it to exit, then KILL), removes
#                      FILE, and prints the pid it stopped (nothing when none was running)

pid_running() {
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_pid() {
    if pid_running "$1"; then
        local pid
        pid=$(cat "$1")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        echo "$pid"
    fi
    rm -f "$1"
}
