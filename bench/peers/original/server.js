// The original app's three routes, as any Node.js implementation of it would have them:
// express 4 and body-parser, jobs in an in-memory array, JSON answers, a job's id is its index.
// It is the peer `make bench-load` measures pi-jobs against; nothing of pi-jobs runs on it.
//
//   PORT=4000 node server.js
"use strict";

const express = require("express");
const bodyParser = require("body-parser");
const zlib = require("zlib");

const MAX_NUM = 1000000;
const jobs = [];

// Machin's formula in BigInt fixed point: pi to `num` decimals as "3.1415...".
function piText(num) {
  const guard = 10n;
  const unit = 10n ** (BigInt(num) + guard);
  const arctanInverse = (x) => {
    const xx = BigInt(x) * BigInt(x);
    let term = unit / BigInt(x);
    let sum = term;
    for (let k = 3n, sign = -1n; term !== 0n; k += 2n, sign = -sign) {
      term /= xx;
      sum += (sign * term) / k;
    }
    return sum;
  };
  const pi = (4n * (4n * arctanInverse(5) - arctanInverse(239))) / 10n ** guard;
  const digits = pi.toString();
  return `${digits[0]}.${digits.slice(1)}`;
}

// A zip holding one deflated file (no zip library: node's zlib has deflate and CRC-32).
function zipOne(name, text) {
  const data = Buffer.from(text, "ascii");
  const packed = zlib.deflateRawSync(data, { level: 1 });
  const crc = zlib.crc32(data);
  const nameBytes = Buffer.from(name, "ascii");
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(packed.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(packed.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + nameBytes.length, 12);
  end.writeUInt32LE(local.length + nameBytes.length + packed.length, 16);
  return Buffer.concat([local, nameBytes, packed, central, nameBytes, end]);
}

const app = express();
app.use(bodyParser.urlencoded({ extended: false }));
app.use(bodyParser.json());

app.post("/pi_job", (req, res) => {
  const num = Number.parseInt(req.body.num, 10);
  if (!Number.isInteger(num) || num < 1 || num > MAX_NUM) {
    return res.status(422).json({ success: false, error: `num must be 1 to ${MAX_NUM}` });
  }
  const job = { id: jobs.length, num, status: "in_progress", digits: null };
  jobs.push(job);
  setImmediate(() => {
    job.digits = piText(num);
    job.status = "complete";
  });
  return res.json({ success: true, job_id: job.id });
});

app.get("/pi_job/:id", (req, res) => {
  const job = jobs[Number.parseInt(req.params.id, 10)];
  if (!job) return res.status(404).json({ success: false, error: "no such job" });
  return res.json({ success: true, job_id: job.id, num: job.num, status: job.status });
});

app.get("/download_pi_job/:id", (req, res) => {
  const job = jobs[Number.parseInt(req.params.id, 10)];
  if (!job || job.status !== "complete") {
    return res.status(404).json({ success: false, error: "no such job, or not complete" });
  }
  const name = `digits_of_pi_${job.id}`;
  res.set("Content-Type", "application/zip");
  res.set("Content-Disposition", `attachment; filename="${name}.zip"`);
  return res.send(zipOne(`${name}.txt`, job.digits));
});

const port = Number.parseInt(process.env.PORT || "4000", 10);
app.listen(port, "127.0.0.1", () => console.log(`peer listening on ${port}`));
