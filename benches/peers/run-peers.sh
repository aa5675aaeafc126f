#!/usr/bin/env bash
# run-peers.sh MINUTES [PEER ... | 8d | oneshot]
#
# Baseline benchmark of the peer tools for the two audio services:
#   (a) one-shot creation  = pydub split_on_silence(750 ms, -30 dBFS, keep 50 ms)
#   (b) 8D audio           = per-sample circular pan + Reverb/Gain/Limiter + MP3 192k
# For MINUTES of test audio (made once by make-test-audio.sh and cached), runs
# each peer under GNU time (/usr/bin/time -v) with a per-run timeout, checks the
# output, prints a table and writes it as TSV.
#
# Environment (all optional):
#   RUNS=N            runs per peer; the table gives the median of each figure (default 1)
#   PEER_TIMEOUT=S    seconds before a run is killed and noted (default 900 = 15 min)
#   BENCH_WORK=DIR    inputs and outputs (default ${TMPDIR:-/tmp}/peer-bench)
#   PEERS_VENV=DIR    Python venv with peers/requirements.txt (default ${TMPDIR:-/tmp}/peers-venv;
#                     created and filled with pip if missing)
#   RESULTS_DIR=DIR   where the TSV files go (default: target/peer-bench/results in the repo)
#   SEED=N            test-audio seed (default 8)
#   LONGWAVE=PATH     the longwave binary (default: target/release/longwave in the repo)
# Peers: decode_only transcode_192k pydub_oneshot_wav pydub_oneshot_mp3
#   ffmpeg_oneshot_wav ffmpeg_oneshot_mp3 sox_oneshot_wav sox_oneshot_mp3
#   pedalboard_8d pedalboard_8d_stream ffmpeg_8d ffmpeg_8d_aeval sox_8d
#   longwave_oneshot_wav longwave_oneshot_mp3 longwave_8d (the project itself, $LONGWAVE)
#   (default: all of them, in this order). `8d` and `oneshot` name the sets for one job (the
#   floor and every tool that does it). Naming some peers re-runs only those: their rows in
#   peers-MINUTESmin.tsv are replaced, the other rows are kept. The last lines print longwave's
#   ratios to the peers in the table (CPU and wall time).
# Tools: ffmpeg, sox with libsox-fmt-mp3, espeak-ng, GNU time (Debian: apt-get install ffmpeg
# sox libsox-fmt-mp3 espeak-ng time); pydub and pedalboard from tools/requirements.txt in a venv
# this script makes.
#
# Figures: cpu_s = user + system seconds of the whole process tree (children
# that were waited for included); peak_rss_mib = the largest resident set of
# any single process in the tree (what getrusage reports), not a sum;
# x_rt = audio seconds / wall seconds; x_rt_cpu = audio seconds / cpu seconds.
# On a shared, busy machine prefer cpu_s and peak_rss_mib; wall_s is noisy.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ]; then
    sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
fi
minutes=$1; shift
all_peers=(decode_only transcode_192k pydub_oneshot_wav pydub_oneshot_mp3 ffmpeg_oneshot_wav ffmpeg_oneshot_mp3
    sox_oneshot_wav sox_oneshot_mp3 pedalboard_8d pedalboard_8d_stream ffmpeg_8d ffmpeg_8d_aeval sox_8d
    longwave_oneshot_wav longwave_oneshot_mp3 longwave_8d)
case "${1:-}" in
    8d) peers=(transcode_192k pedalboard_8d_stream ffmpeg_8d sox_8d longwave_8d) ;;
    oneshot) peers=(pydub_oneshot_wav ffmpeg_oneshot_wav sox_oneshot_wav longwave_oneshot_wav
                    ffmpeg_oneshot_mp3 sox_oneshot_mp3 longwave_oneshot_mp3) ;;
    "") peers=("${all_peers[@]}") ;;
    *) peers=("$@") ;;
esac
repo=$(cd "$here/../.." && pwd)
LONGWAVE=${LONGWAVE:-$repo/target/release/longwave}

runs=${RUNS:-1}
timeout_s=${PEER_TIMEOUT:-900}
work=${BENCH_WORK:-${TMPDIR:-/tmp}/peer-bench}
venv=${PEERS_VENV:-$HOME/.cache/longwave/peers-venv}
results=${RESULTS_DIR:-$repo/target/peer-bench/results}
seed=${SEED:-8}
for tool in ffmpeg ffprobe sox espeak-ng timeout awk python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool (apt-get install ffmpeg sox libsox-fmt-mp3 espeak-ng time)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "missing GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
case " ${peers[*]} " in
    *" longwave_"*) [ -x "$LONGWAVE" ] || { echo "no longwave binary at $LONGWAVE (cargo build --release, or set LONGWAVE)" >&2; exit 2; } ;;
esac
mkdir -p "$work" "$results"

# ------------------------------------------------------------------ venv
req=$here/tools/requirements.txt
req_key=$(sha256sum "$req" | cut -c1-16)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.peers-req" 2>/dev/null)" != "$req_key" ]; then
    echo "== preparing venv $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$req"
    echo "$req_key" > "$venv/.peers-req"
fi
py=$venv/bin/python

# ------------------------------------------------------------------ input (cached)
gen_key=$(sha256sum "$here/make-test-audio.sh" | cut -c1-8)
indir=$work/inputs/${minutes}min-seed$seed-$gen_key
if [ ! -s "$indir/input.mp3" ]; then
    echo "== generating $minutes min of test audio in $indir" >&2
    rm -rf "$indir.part"
    "$here/make-test-audio.sh" "$indir.part" "$minutes" "$seed" >&2
    rm -rf "$indir"; mv "$indir.part" "$indir"
fi
audio_s=$(awk -v m="$minutes" 'BEGIN { printf "%.3f", m * 60 }')
in_dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$indir/input.mp3")

# ------------------------------------------------------------------ helpers
peer_setup() {   # sets chain, input, out, outkind, cmd for peer $1
    local p=$1 o=$work/out/${minutes}min/$1
    out=$o; outkind=dir
    case $p in
        decode_only)          chain=floor; input=$indir/input.mp3; outkind=none
                              cmd=("$here/tools/decode_only.sh" "$input") ;;
        transcode_192k)       chain=floor; input=$indir/input.mp3; out=$o/out.mp3; outkind=file
                              cmd=("$here/tools/transcode_only.sh" "$input" "$out") ;;
        pydub_oneshot_wav)    chain=a; input=$indir/input.wav; cmd=("$py" "$here/tools/pydub_oneshot.py" "$input" "$o") ;;
        pydub_oneshot_mp3)    chain=a; input=$indir/input.mp3; cmd=("$py" "$here/tools/pydub_oneshot.py" "$input" "$o") ;;
        ffmpeg_oneshot_wav)   chain=a; input=$indir/input.wav; cmd=("$here/tools/ffmpeg_oneshot.sh" "$input" "$o") ;;
        ffmpeg_oneshot_mp3)   chain=a; input=$indir/input.mp3; cmd=("$here/tools/ffmpeg_oneshot.sh" "$input" "$o") ;;
        sox_oneshot_wav)      chain=a; input=$indir/input.wav; cmd=("$here/tools/sox_oneshot.sh" "$input" "$o") ;;
        sox_oneshot_mp3)      chain=a; input=$indir/input.mp3; cmd=("$here/tools/sox_oneshot.sh" "$input" "$o") ;;
        pedalboard_8d)        chain=b; input=$indir/input.mp3; out=$o/out.mp3; outkind=file
                              cmd=("$py" "$here/tools/pedalboard_8d.py" "$input" "$out") ;;
        pedalboard_8d_stream) chain=b; input=$indir/input.mp3; out=$o/out.mp3; outkind=file
                              cmd=("$py" "$here/tools/pedalboard_8d_stream.py" "$input" "$out") ;;
        ffmpeg_8d)            chain=b; input=$indir/input.mp3; out=$o/out.mp3; outkind=file
                              cmd=("$here/tools/ffmpeg_8d.sh" "$input" "$out" apulsator) ;;
        ffmpeg_8d_aeval)      chain=b; input=$indir/input.mp3; out=$o/out.mp3; outkind=file
                              cmd=("$here/tools/ffmpeg_8d.sh" "$input" "$out" aeval) ;;
        sox_8d)               chain=b; input=$indir/input.mp3; out=$o/out.mp3; outkind=file
                              cmd=("$here/tools/sox_8d.sh" "$input" "$out") ;;
        longwave_oneshot_wav) chain=a; input=$indir/input.wav; cmd=("$LONGWAVE" process "$input" --preset oneshot -o "$o" --quiet) ;;
        longwave_oneshot_mp3) chain=a; input=$indir/input.mp3; cmd=("$LONGWAVE" process "$input" --preset oneshot -o "$o" --quiet) ;;
        longwave_8d)          chain=b; input=$indir/input.mp3; out=$o/out.mp3; outkind=file
                              cmd=("$LONGWAVE" process "$input" --preset 8d -o "$out" --quiet) ;;
        *) echo "unknown peer: $p" >&2; return 1 ;;
    esac
}

time_field() {   # $1 = file from time -v, $2 = label prefix
    awk -F': ' -v k="$2" 'index($0, k) { sub(/^[ \t]+/, "", $1); print $NF; exit }' "$1"
}

wall_to_s() {    # h:mm:ss or m:ss.ss -> seconds
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<< "$1"
}

median() {       # numbers on stdin -> median (lower of the two middle ones for even counts)
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "NA"; else print a[int((NR + 1) / 2)] }'
}

check_output() { # prints: out_bytes pieces out_s level_db note
    local bytes pieces=NA outs=NA lvl=NA note=ok f d
    case $outkind in
        none) echo "0 NA NA NA ok"; return ;;
        file)
            if [ ! -s "$out" ]; then echo "0 NA NA NA no-output"; return; fi
            bytes=$(stat -c %s "$out")
            outs=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$out" || echo NA)
            local log
            log=$(ffmpeg -nostdin -hide_banner -nostats -v info -i "$out" \
                -af astats=measure_perchannel=none:measure_overall=RMS_level -f null - 2>&1 || true)
            lvl=$(grep -oE 'RMS level dB: [-0-9.a-z]+' <<< "$log" | awk '{ print $4 }' | tail -1)
            grep -qiE 'error|invalid|corrupt' <<< "$log" && note=decode-errors
            awk -v a="$outs" -v b="$in_dur" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d > 0.25) }' && note=duration-mismatch
            ;;
        dir)
            bytes=$(du -sb "$out" | cut -f1)
            pieces=0; outs=0
            for f in "$out"/piece_*; do
                [ -e "$f" ] || continue
                d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f" || echo 0)
                [ -n "$d" ] && [ "$d" != N/A ] || { note=bad-piece; d=0; }
                pieces=$((pieces + 1))
                outs=$(awk -v a="$outs" -v b="$d" 'BEGIN { printf "%.3f", a + b }')
            done
            [ "$pieces" -gt 0 ] || note=no-pieces
            ;;
    esac
    echo "$bytes $pieces $outs ${lvl:-NA} $note"
}

# ------------------------------------------------------------------ run
stamp=$(date -u +%Y%m%dT%H%M%SZ)
tsv=$results/peers-${minutes}min.tsv
runs_tsv=$results/peers-${minutes}min.runs.tsv
meta=$results/peers-${minutes}min.meta.txt
logdir=$work/logs/${minutes}min-$stamp
mkdir -p "$logdir"
partial=0; [ "${#peers[@]}" -lt "${#all_peers[@]}" ] && partial=1
[ "$partial" = 1 ] && [ -s "$meta" ] && echo "--- partial run: ${peers[*]}" >> "$meta"
[ "$partial" = 1 ] || : > "$meta"
{
    echo "date_utc	$stamp"
    echo "minutes	$minutes"
    echo "runs_per_peer	$runs"
    echo "timeout_s	$timeout_s"
    echo "input	seed $seed, generator $gen_key, $(tr '\n' ' ' < "$indir/input.info")"
    echo "input_mp3_duration_s	$in_dur"
    echo "cpu	$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory	$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel	$(uname -r)"
    echo "ffmpeg	$(ffmpeg -version | head -1)"
    echo "sox	$(sox --version 2>&1 | head -1)"
    echo "python	$("$py" -c 'import sys; print(sys.version.split()[0])') $("$py" -m pip freeze 2>/dev/null | tr '\n' ' ')"
    echo "loadavg_start	$(cut -d' ' -f1-3 /proc/loadavg)"
} >> "$meta"

header="peer	chain	input	audio_min	runs	cpu_s	user_s	sys_s	wall_s	x_rt	x_rt_cpu	peak_rss_mib	out_mib	pieces	out_s	out_rms_db	load1	status"
new_tsv=$logdir/table.tsv
echo "$header" > "$new_tsv"
runs_hdr="peer	run	rc	user_s	sys_s	wall_s	peak_rss_kib	load1_start	date_utc"
if [ "$partial" = 1 ] && [ -s "$runs_tsv" ] && [ "$(head -1 "$runs_tsv")" = "$runs_hdr" ]; then
    awk -F'\t' -v drop=" ${peers[*]} " 'NR == 1 || index(drop, " " $1 " ") == 0' "$runs_tsv" > "$logdir/runs.keep"
else
    echo "$runs_hdr" > "$logdir/runs.keep"
fi
cp "$logdir/runs.keep" "$runs_tsv"

for p in "${peers[@]}"; do
    peer_setup "$p"
    echo "== $p ($minutes min, $runs run(s))" >&2
    status=ok
    : > "$logdir/$p.vals"
    for ((r = 1; r <= runs; r++)); do
        rm -rf "$work/out/${minutes}min/$p"; mkdir -p "$work/out/${minutes}min/$p"
        load1=$(cut -d' ' -f1 /proc/loadavg)
        tf=$logdir/$p.$r.time
        rc=0
        /usr/bin/time -v -o "$tf" timeout -k 30 "$timeout_s" "${cmd[@]}" \
            > "$logdir/$p.$r.out" 2> "$logdir/$p.$r.err" || rc=$?
        user=$(time_field "$tf" "User time (seconds)")
        sys=$(time_field "$tf" "System time (seconds)")
        wall=$(wall_to_s "$(time_field "$tf" "Elapsed (wall clock) time")")
        rss=$(time_field "$tf" "Maximum resident set size (kbytes)")
        echo "$p	$r	$rc	$user	$sys	$wall	$rss	$load1	$stamp" >> "$runs_tsv"
        echo "$user $sys $wall $rss $load1" >> "$logdir/$p.vals"
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="timeout>${timeout_s}s"; break; fi
        if [ "$rc" != 0 ]; then status="exit-$rc"; tail -3 "$logdir/$p.$r.err" >&2; break; fi
    done
    u=$(awk '{ print $1 }' "$logdir/$p.vals" | median)
    s=$(awk '{ print $2 }' "$logdir/$p.vals" | median)
    c=$(awk '{ printf "%.2f\n", $1 + $2 }' "$logdir/$p.vals" | median)
    w=$(awk '{ print $3 }' "$logdir/$p.vals" | median)
    m=$(awk '{ print $4 }' "$logdir/$p.vals" | median)
    l=$(awk '{ print $5 }' "$logdir/$p.vals" | median)
    n=$(wc -l < "$logdir/$p.vals")
    read -r bytes pieces outs lvl note <<< "$(check_output)"
    [ "$status" = ok ] && status=$note
    awk -v OFS='\t' -v p="$p" -v ch="$chain" -v inp="${input##*.}" -v am="$minutes" -v n="$n" \
        -v c="$c" -v u="$u" -v s="$s" -v w="$w" -v m="$m" -v a="$audio_s" -v b="$bytes" \
        -v pc="$pieces" -v os="$outs" -v lv="$lvl" -v l="$l" -v st="$status" 'BEGIN {
            xr = (w > 0) ? sprintf("%.1f", a / w) : "NA";
            xc = (c > 0) ? sprintf("%.1f", a / c) : "NA";
            print p, ch, inp, am, n, sprintf("%.2f", c), u, s, w, xr, xc, sprintf("%.1f", m / 1024),
                  sprintf("%.1f", b / 1048576), pc, os, lv, l, st }' >> "$new_tsv"
done
echo "loadavg_end	$(cut -d' ' -f1-3 /proc/loadavg)" >> "$meta"

# merge: rows of this run replace rows of the same peers; order follows all_peers
old_tsv=$logdir/table.old
if [ "$partial" = 1 ] && [ -s "$tsv" ] && [ "$(head -1 "$tsv")" = "$header" ]; then cp "$tsv" "$old_tsv"; else echo "$header" > "$old_tsv"; fi
awk -F'\t' -v order="${all_peers[*]}" '
    BEGIN { n = split(order, o, " "); for (i = 1; i <= n; i++) rank[o[i]] = i }
    FNR == 1 { if (NR == 1) print; next }
    FILENAME == ARGV[1] { row[$1] = $0; next }
    { row[$1] = $0 }
    END { for (i = 1; i <= n; i++) if (o[i] in row) print row[o[i]] }' "$old_tsv" "$new_tsv" > "$tsv"

echo
column -t -s $'\t' "$tsv"
echo
echo "TSV: $tsv (per run: $runs_tsv, machine/tools: $meta, logs: $logdir)"
echo "cpu_s = user+sys of the process tree; peak_rss = largest single process; wall_s is noisy on a shared machine."

# longwave's ratios to the peers in the table (all rows are from this file; check their dates
# in the meta file when rows of several runs were merged).
echo
awk -F'\t' '
    NR > 1 && $NF ~ /^ok/ { cpu[$1] = $6; wall[$1] = $9 }
    function cheapest(list,   n, names, i, best, who) {
        n = split(list, names, " "); best = ""
        for (i = 1; i <= n; i++) if (names[i] in cpu && (best == "" || cpu[names[i]] < best)) { best = cpu[names[i]]; who = names[i] }
        return who
    }
    END {
        if ("longwave_8d" in cpu) {
            p = cheapest("pedalboard_8d pedalboard_8d_stream ffmpeg_8d ffmpeg_8d_aeval sox_8d")
            if (p != "") printf "8D: longwave CPU s %.2f = %.2fx the cheapest peer (%s, %.2f)\n", cpu["longwave_8d"], cpu["longwave_8d"] / cpu[p], p, cpu[p]
            if ("sox_8d" in wall) printf "8D: longwave wall s %.2f, %.2fx faster than sox (%.2f)\n", wall["longwave_8d"], wall["sox_8d"] / wall["longwave_8d"], wall["sox_8d"]
            if ("transcode_192k" in cpu) printf "8D: longwave CPU s = %.2fx the decode + LAME floor (%.2f)\n", cpu["longwave_8d"] / cpu["transcode_192k"], cpu["transcode_192k"]
        }
        if ("longwave_oneshot_wav" in wall && "pydub_oneshot_wav" in wall)
            printf "one-shot WAV: longwave wall s %.2f, %.1fx faster than pydub (%.2f)\n", wall["longwave_oneshot_wav"], wall["pydub_oneshot_wav"] / wall["longwave_oneshot_wav"], wall["pydub_oneshot_wav"]
        if ("longwave_oneshot_mp3" in cpu) {
            p = cheapest("pydub_oneshot_mp3 ffmpeg_oneshot_mp3 sox_oneshot_mp3")
            if (p != "") printf "one-shot MP3: longwave CPU s %.2f = %.2fx the cheapest peer (%s, %.2f)\n", cpu["longwave_oneshot_mp3"], cpu["longwave_oneshot_mp3"] / cpu[p], p, cpu[p]
        }
    }' "$tsv"
