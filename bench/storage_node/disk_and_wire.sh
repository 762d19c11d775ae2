#!/bin/bash
# Can this machine read its disk and carry the same bytes over loopback TCP
# at once? fio (io_uring, O_DIRECT) alone, iperf3 alone, both at once, then
# both held at 0.85 of fio's solo rate: a bound for any node on this host,
# next to bench_storage_node's figures. Root, fio and iperf3 needed.
#
#   bench/storage_node/disk_and_wire.sh [BS=128k] [QD=32] [RW=randread] [SECONDS=8] [DIR=/var/tmp/sluice-disk-and-wire]
set -euo pipefail
BS=${1:-128k}; QD=${2:-32}; RW=${3:-randread}; T=${4:-8}; DIR=${5:-/var/tmp/sluice-disk-and-wire}
for tool in fio iperf3 python3; do
  command -v $tool >/dev/null || { echo "disk_and_wire: $tool is not installed" >&2; exit 2; }
done
mkdir -p "$DIR"
F=$DIR/fio.dat
PORT=$((25000 + $$ % 20000))
trap 'rm -rf "$DIR"' EXIT
mib() { python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["read"]; print(round(j["bw_bytes"]/1048576))'; }
net() { python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; c=e["cpu_utilization_percent"]; print(round(e["sum_received"]["bits_per_second"]/8/1048576), "MiB/s (sender", round(c["host_total"]), "%, receiver", round(c["remote_total"]), "% of a core)")'; }
fiojob() {
  echo 3 > /proc/sys/vm/drop_caches
  fio --name=dw --filename="$F" --size=1G --ioengine=io_uring --direct=1 --rw="$RW" --bs="$BS" \
      --iodepth="$QD" --runtime="$T" --time_based $1 --output-format=json 2>/dev/null | mib
}
iperf() {
  iperf3 -s -1 -p $PORT >/dev/null 2>&1 &
  sleep 0.3
  iperf3 -c 127.0.0.1 -p $PORT -l "$BS" -t "$T" $1 -J 2>/dev/null | net
}
fio --name=dw --filename="$F" --size=1G --rw=write --bs=1M --direct=1 --ioengine=io_uring >/dev/null 2>&1
solo_fio=$(fiojob "")
solo_net=$(iperf "")
echo "$RW $BS QD$QD: fio alone $solo_fio MiB/s; iperf3 -l $BS alone $solo_net"
iperf "" > "$DIR/net.txt" & P=$!
both_fio=$(fiojob ""); wait $P
echo "  at once: fio $both_fio MiB/s, iperf3 $(cat "$DIR/net.txt")"
R=$((solo_fio * 85 / 100))
iperf "-b $((R * 8 * 1048576))" > "$DIR/net.txt" & P=$!
held_fio=$(fiojob "--rate=${R}m"); wait $P
echo "  both held at 0.85 of fio alone ($R MiB/s): fio $held_fio MiB/s, iperf3 $(cat "$DIR/net.txt")"
