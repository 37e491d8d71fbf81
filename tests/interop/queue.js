// node queue.js PORT NAMESPACE METHOD ARGS_JSON
// Calls one node-resque Queue method with the given arguments and prints {"result": ...}.
"use strict";

const { Queue } = require("node-resque");
const { connectionFromArgs, reply, fail } = require("./connection");

async function main() {
  const connection = connectionFromArgs(process.argv);
  const method = process.argv[4];
  const args = JSON.parse(process.argv[5] || "[]");
  const queue = new Queue({ connection });
  queue.on("error", fail);
  await queue.connect();
  if (typeof queue[method] !== "function") {
    throw new Error(`node-resque Queue has no method ${method}`);
  }
  try {
    const result = await queue[method](...args);
    reply({ result: result === undefined ? null : result });
  } finally {
    await queue.end();
  }
}

main().catch(fail);
