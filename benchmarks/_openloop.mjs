// The open-loop generator of benchmarks/_openloop.py, in Node.js: the same arguments,
// rules and JSON output, several times the request rate a Python event loop can keep on
// schedule (a generator that falls behind its own schedule counts its lateness against
// the server, since latency runs from each request's due time).
//
//     node benchmarks/_openloop.mjs --url http://127.0.0.1:PORT/path --body-file body.json \
//         --rate 2000 --seconds 60 [--connections 64] [--warm-up 2] [--timeline-ms 100]
//
// Requests are due at a constant rate whether or not earlier ones have answered; each
// waits for a free keep-alive connection (one request in flight per connection) and its
// latency counts from when it was due. Loopback only, bounded by --seconds. With
// --timeline-ms, the output also has "timeline": [due time of the window's start (Unix ms),
// requests, their max latency ms] per window of recorded requests, by due time.
//
// Its own floor, against a trivial Node.js server on the other core: 1,000 / 3,000 /
// 8,000 req/s held, p50 0.9 / 0.9 / 1.0 ms, p99 3.8 / 3.9 / 4.1 ms (timer ticks), 18-29%
// of its core; the Python generator at 3,000 req/s: p50 0.7, p99 1.9 ms, and it falls
// behind its schedule above ~1,200 req/s against a real server.
import { readFileSync } from "node:fs";
import net from "node:net";

const SLOW_MS = 100;

function parseArgs(argv) {
  const args = { connections: 64, "warm-up": 2, seconds: 20 };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const key of ["url", "body-file", "rate"]) {
    if (args[key] === undefined) throw new Error(`--${key} is required`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const url = new URL(args.url);
if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
  throw new Error("loopback addresses only");
}
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const body = readFileSync(args["body-file"]);
const raw = Buffer.concat([
  Buffer.from(
    `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
  ),
  body,
]);
const now = () => performance.now();

const latencies = [];
const timelineMs = Number(args["timeline-ms"] ?? 0);
const timeline = new Map(); // window index → [requests, max latency ms]
const due = []; // due times (ms) of requests waiting for a connection
let dueHead = 0;
let errors = 0;
let finished = 0;
const total = Math.floor(rate * seconds);
let start = 0;
let recordedFrom = 0;
const idle = [];

// One keep-alive connection with a minimal HTTP/1.1 response parser.
class Connection {
  constructor() {
    this.buffer = Buffer.alloc(0);
    this.scheduled = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      this.socket = net.connect({ host: url.hostname.replace(/[[\]]/g, ""), port: url.port || 80 });
      this.socket.setNoDelay(true);
      this.socket.once("connect", () => resolve(this));
      this.socket.once("error", reject);
      this.socket.on("error", () => {}); // "close" follows and handles it
      this.socket.on("data", (chunk) => this.onData(chunk));
      this.socket.on("close", () => this.onClose());
    });
  }

  send(scheduled) {
    this.scheduled = scheduled;
    this.socket.write(raw);
  }

  onData(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const end = this.buffer.indexOf("\r\n\r\n");
    if (end < 0) return;
    const head = this.buffer.subarray(0, end).toString("latin1");
    const match = /content-length:\s*(\d+)/i.exec(head);
    const length = match ? Number(match[1]) : 0;
    if (this.buffer.length < end + 4 + length) return;
    this.buffer = this.buffer.subarray(end + 4 + length);
    const status = Number(head.split(" ", 2)[1]);
    this.done(status === 200);
  }

  onClose() {
    // The request in flight failed; a fresh connection takes this one's place.
    if (this.scheduled !== null) this.record(false);
    this.buffer = Buffer.alloc(0);
    if (finished < total) this.open().then(() => release(this), () => {});
  }

  done(ok) {
    this.record(ok);
    if (finished < total) release(this);
  }

  record(ok) {
    const scheduled = this.scheduled;
    this.scheduled = null;
    finished += 1;
    if (!ok) errors += 1;
    else if (scheduled >= recordedFrom) {
      const latency = now() - scheduled;
      latencies.push(latency);
      if (timelineMs) {
        const window = Math.floor((performance.timeOrigin + scheduled) / timelineMs);
        const seen = timeline.get(window) ?? [0, 0];
        timeline.set(window, [seen[0] + 1, Math.max(seen[1], latency)]);
      }
    }
    if (finished === total) report();
  }
}

function release(connection) {
  if (dueHead < due.length) connection.send(due[dueHead++]);
  else idle.push(connection);
}

function percentile(sorted, q) {
  if (!sorted.length) return NaN;
  const rank = (q / 100) * (sorted.length - 1); // numpy's default (linear) interpolation
  const low = Math.floor(rank);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

function report() {
  const elapsed = (now() - start) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  console.log(
    JSON.stringify({
      rate,
      sent: total,
      recorded: sorted.length,
      errors,
      achieved_rps: (total - errors) / elapsed,
      p50_ms: percentile(sorted, 50),
      p99_ms: percentile(sorted, 99),
      p999_ms: percentile(sorted, 99.9),
      max_ms: sorted.length ? sorted[sorted.length - 1] : NaN,
      over_100ms: sorted.filter((ms) => ms > SLOW_MS).length,
      ...(timelineMs && {
        timeline: [...timeline].sort((a, b) => a[0] - b[0]).map(([w, v]) => [w * timelineMs, ...v]),
      }),
    }),
  );
  process.exit(0);
}

// Connect first, so connection set-up is not counted against the server.
const connections = await Promise.all(
  Array.from({ length: Number(args.connections) }, () => new Connection().open()),
);
idle.push(...connections);
start = now();
recordedFrom = start + Number(args["warm-up"]) * 1000;
let issued = 0;
// Issue every request that is due, then sleep until the next one is: a timer, never a
// busy loop, since the generator shares its core with the cluster's head (HAProxy). Node's
// timers tick in whole milliseconds, so a request may go out up to ~1 ms after it was
// due, which counts against the server, as with the Python generator's event loop.
function tick() {
  const t = now();
  while (issued < total && start + (issued * 1000) / rate <= t) {
    const scheduled = start + (issued * 1000) / rate;
    issued += 1;
    const connection = idle.pop();
    if (connection) connection.send(scheduled);
    else due.push(scheduled);
  }
  if (issued >= total) return;
  setTimeout(tick, Math.max(0, start + (issued * 1000) / rate - now()));
}
tick();
setTimeout(() => {
  console.error(`gave up: ${finished} of ${total} answered ${seconds + 60} s after the start`);
  report();
}, (seconds + 60) * 1000);
