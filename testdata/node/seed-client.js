'use strict';
// seed-client.js: the seed tutorial's Node.js TCP client, as a peer for
// tcpkit's interop tests (cmd/tcpkit/interop_test.go).
//
//   node seed-client.js PORT [INTERVAL_MS] [--count N] [--timeout MS]
//
// It connects to 127.0.0.1:PORT, prints "connect to server!" and sends
// "testing~" at once and then every INTERVAL_MS (default 1000). It prints
// each chunk received as the seed does, console.log('receive: ', chunk),
// which shows a Buffer: "receive:  <Buffer 74 65 73 74>"; "disconnected."
// when the server ends the connection; and the error of a failed send.
//
// As in the seed, without --count it goes on sending (and failing, once
// the server has ended the connection) until it is killed. With --count N
// it stops after N sends, ends the connection once data has arrived after
// the last one, and exits 0 when the connection closes cleanly.
// --timeout MS sets the socket's idle timeout: "connection timeout.".
const net = require('net');

function usage(msg) {
  console.error(`seed-client.js: ${msg}\n` +
    'usage: node seed-client.js PORT [INTERVAL_MS] [--count N] [--timeout MS]');
  process.exit(2);
}

const positional = [];
let count = 0;
let timeout = 0;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === '--count' || arg === '--timeout') {
    const v = args[++i];
    if (v === undefined || !/^\d+$/.test(v)) usage(`${arg} needs a number`);
    if (arg === '--count') count = Number(v);
    else timeout = Number(v);
  } else if (/^\d+$/.test(arg)) {
    positional.push(Number(arg));
  } else {
    usage(`unexpected argument ${JSON.stringify(arg)}`);
  }
}
if (positional.length < 1 || positional.length > 2) usage('give PORT [INTERVAL_MS]');
const [port, interval = 1000] = positional;
if (port < 1 || port > 65535 || interval < 1) usage('PORT or INTERVAL_MS out of range');

const socket = net.connect({ port, host: '127.0.0.1' });
if (timeout > 0) socket.setTimeout(timeout);

let sent = 0;
let timer;
const done = () => count > 0 && sent >= count;

function send() {
  if (done()) {
    clearInterval(timer);
    return;
  }
  sent++;
  // Node 20 reports a write that fails after the server ended the
  // connection (EPIPE, "This socket has been ended by the other party")
  // only to this callback, not as an 'error' event: print it here.
  socket.write('testing~', (err) => {
    if (err) console.log(`write error: ${err.code}`);
  });
}

socket.on('connect', () => {
  console.log('connect to server!');
  timer = setInterval(send, interval);
  send(); // the seed waits a whole interval first; tests need not
});

socket.on('data', (chunk) => {
  console.log('receive: ', chunk);
  if (done()) socket.end(); // data arrived after the last send
});

socket.on('end', () => {
  console.log('disconnected.');
});

socket.on('error', (err) => {
  console.log(err);
});

socket.on('timeout', () => {
  console.log('connection timeout.');
});

socket.on('close', (hadError) => {
  if (count > 0) {
    clearInterval(timer);
    process.exit(hadError ? 1 : 0);
  }
});
