// node receiver.js REDIS_PORT HTTP_PORT
// The smallest useful webhook receiver in node: read the body, parse it as JSON, enqueue it with
// node-resque on "bitcoin:incoming", answer 202. No verification, validation or dedupe.
"use strict";

const http = require("http");
const { Queue } = require("node-resque");

async function main() {
  const connection = { host: "127.0.0.1", port: Number(process.argv[2]), database: 0, namespace: "resque" };
  const queue = new Queue({ connection });
  queue.on("error", (error) => process.stderr.write(`queue error: ${error}\n`));
  await queue.connect();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      let payment;
      try {
        payment = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (error) {
        res.writeHead(422, { "content-type": "application/json" }).end('{"error":"invalid_json"}');
        return;
      }
      try {
        await queue.enqueue("bitcoin:incoming", "log", [payment]);
      } catch (error) {
        res.writeHead(503, { "content-type": "application/json" }).end('{"error":"unavailable"}');
        return;
      }
      res.writeHead(202, { "content-type": "application/json" }).end('{"status":"enqueued"}');
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(Number(process.argv[3]), "127.0.0.1");
  const stop = async () => {
    server.close();
    await queue.end();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
