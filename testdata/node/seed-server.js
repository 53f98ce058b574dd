'use strict';
// seed-server.js: the seed tutorial's Node.js TCP server, as a peer for
// tcpkit's interop tests (cmd/tcpkit/interop_test.go).
//
//   node seed-server.js PORT [--keep-open]
//
// It listens on 127.0.0.1 only, so that tests stay on loopback. PORT 0
// picks a free port; the line "listen on port N" names the real one. For
// each connection it prints the client's address, then for each chunk of
// data the chunk as text; it replies "test" and ends the connection, or,
// with --keep-open, replies to every chunk and leaves the connection open.
const net = require('net');

function usage(msg) {
  console.error(`seed-server.js: ${msg}\nusage: node seed-server.js PORT [--keep-open]`);
  process.exit(2);
}

let port;
let keepOpen = false;
for (const arg of process.argv.slice(2)) {
  if (arg === '--keep-open') {
    keepOpen = true;
  } else if (port === undefined && /^\d+$/.test(arg) && Number(arg) <= 65535) {
    port = Number(arg);
  } else {
    usage(`unexpected argument ${JSON.stringify(arg)}`);
  }
}
if (port === undefined) usage('missing PORT');

const server = net.createServer((socket) => {
  // The seed prints socket.address() here, which is the server's own local
  // address, not the client's (a bug in the tutorial: see the seed's
  // README). The client's address is socket.remoteAddress.
  console.log(`connect address : ${socket.remoteAddress}`);

  socket.on('data', (data) => {
    console.log(data.toString());
    socket.write('test');
    if (!keepOpen) socket.end();
  });

  // Without a handler, an 'error' (a reset by the client, say) would be
  // thrown and end this process; print it instead.
  socket.on('error', (err) => {
    console.log(`socket error: ${err.code || ''} ${err.message}`);
  });
});

server.on('error', (err) => {
  console.error(`seed-server.js: ${err.message}`);
  process.exit(1);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listen on port ${server.address().port}`);
});
