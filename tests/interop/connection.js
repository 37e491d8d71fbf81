// Shared by the interop scripts: where Redis is, and how to answer the Python test.
"use strict";

function connectionFromArgs(argv) {
  const port = Number(argv[2]);
  const namespace = argv[3];
  if (!Number.isInteger(port) || !namespace) {
    throw new Error("usage: node <script> PORT NAMESPACE ...");
  }
  return { host: "127.0.0.1", port, database: 0, namespace };
}

function reply(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

function fail(error) {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
}

module.exports = { connectionFromArgs, reply, fail };
