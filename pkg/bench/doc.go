// Package bench is the seed's throughput test as a library: TCP streams between two
// endpoints over a sweep of I/O sizes, reporting Gbps and the sender's and
// receiver's host CPU % per size, as a table, JSON and a plot shaped like the seed's
// Figure 1.
//
// The reference run is `iperf -s -w 512K` on one end and
// `iperf -c <peer> -t 60 -w 512K -l <iosize> -P 8` on the other, for I/O sizes
// 64 B … 512 KB. A [Server] and a [Client] speak a small protocol of their own
// over one control connection (one JSON object per line):
//
//	client → server  {"op":"hello"}
//	server → client  {"version":1,"iperfPort":N}        (N > 0: iperf -s runs there)
//	client → server  {"op":"start","size":S,"streams":P}
//	server → client  {"run":"ID"}                        (receiver CPU sampling starts)
//	                 P data connections, each opened with {"op":"data","run":"ID"}
//	                 and then S-byte writes until the duration is over
//	client → server  {"op":"stop"}                       (after every stream closed)
//	server → client  {"bytes":B,"seconds":T,"cpu":C}     (after every stream's EOF)
//
// Throughput is the bytes the receiver read, times 8, divided by the receiver's
// elapsed time from the start reply to the last stream's EOF. With iperf2 as the
// data plane (when both ends have `iperf` on PATH) the control connection still
// brackets each run, so the receiver's CPU % is measured the same way, and the
// throughput is iperf's own SUM figure.
//
// CPU % is host CPU, from /proc/stat deltas over the run: 100 × (busy jiffies) /
// (all jiffies), summed over every CPU, so 100 % means every CPU of the host busy.
package bench
