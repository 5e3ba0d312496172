#!/usr/bin/env node
// An independent verifier of a botctl audit log, written from docs/audit-format.md with Node's standard
// library only (node >= 20). It reads an NDJSON export (`botctl audit export --format ndjson --checkpoint`)
// or a file sink's file, and the chain key (`botctl audit export-key --out FILE`) from a file named by
// --key-file or BOTCTL_AUDIT_KEY_FILE, never from argv.
//
//   node tools/verify-audit.mjs --key-file audit.key [--json] EXPORT.ndjson
//
// Exit 0: intact. 10: broken (the first bad record is named). 2: usage or unreadable input.
// The verdict's fields and wording follow `botctl audit verify --json`.

import { createHmac, createPrivateKey, createPublicKey, hkdfSync, verify as edVerify } from "node:crypto";
import { accessSync, constants, createReadStream, readFileSync, realpathSync } from "node:fs";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const GENESIS = "0".repeat(64);
const RECORD = /^\{"seq":(\d+),(.*),"prev_hash":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"\}$/s;
const RAW = /^\{"seq":(\d+),"raw_body":(".*"),"prev_hash":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"\}$/s;
const HEX64 = /^[0-9a-f]{64}$/;

function usage(message) {
  process.stderr.write(`error: ${message}\n` +
    "usage: node tools/verify-audit.mjs [--key-file FILE] [--anchors FILE]... [--json] EXPORT.ndjson\n" +
    "  the key file is what `botctl audit export-key --out FILE` wrote (or set BOTCTL_AUDIT_KEY_FILE)\n");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { keyFile: process.env.BOTCTL_AUDIT_KEY_FILE || null, json: false, file: null, anchorFiles: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") opts.json = true;
    else if (a === "--key-file") opts.keyFile = argv[++i] ?? usage("--key-file needs a FILE");
    else if (a.startsWith("--key-file=")) opts.keyFile = a.slice("--key-file=".length);
    else if (a === "--anchors") opts.anchorFiles.push(argv[++i] ?? usage("--anchors needs a FILE"));
    else if (a === "-h" || a === "--help") usage("help");
    else if (a.startsWith("-")) usage(`unknown option ${a}`);
    else if (opts.file === null) opts.file = a;
    else usage("give one export file");
  }
  if (opts.file === null) usage("give the export file to verify");
  if (!opts.keyFile) usage("no chain key: give --key-file FILE or set BOTCTL_AUDIT_KEY_FILE");
  return opts;
}

function readKey(path) {
  let text;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (e) {
    usage(`cannot read the key file ${path}: ${e.code || e.message}`);
  }
  if (!HEX64.test(text)) usage(`the key file ${path} does not hold 64 hex digits`);
  return Buffer.from(text, "hex");
}

// RFC 8785: ECMAScript's own JSON.stringify for strings and numbers, members sorted by UTF-16 code units
// (Array.prototype.sort's default order), no whitespace.
export function canonicalize(v) {
  if (v === null || typeof v === "boolean") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error("NaN/Infinity are not JSON");
    return JSON.stringify(v);
  }
  if (typeof v === "string") {
    if (!v.isWellFormed()) throw new Error("lone surrogate");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return "[" + v.map(canonicalize).join(",") + "]";
  const keys = Object.keys(v).sort();
  return "{" + keys.map((k) => canonicalize(k) + ":" + canonicalize(v[k])).join(",") + "}";
}

const link = (key, prev, seq, body) =>
  createHmac("sha256", key).update(Buffer.concat([Buffer.from(`${prev}|${seq}|`), body])).digest("hex");

const checkpointMac = (key, seq, hash) => createHmac("sha256", key).update(`checkpoint|${seq}|${hash}`).digest("hex");

function anchorPublicKey(key) {
  // The anchor key: Ed25519 with the seed HKDF-SHA256(chain key, no salt, info "botctl/audit/anchor/v1").
  const seed = Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "botctl/audit/anchor/v1", 32));
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  return createPublicKey(createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }));
}

async function* lines(path) {
  const rl = createInterface({ input: createReadStream(path, { encoding: "utf8" }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) yield [++n, line];
}

function anchorAt(a, path, n) {
  const ok = a && a.v === 1 && Number.isSafeInteger(a.seq) && a.seq >= 1 && HEX64.test(String(a.hash)) &&
    typeof a.ts === "string" && typeof a.sig === "string";
  if (!ok) usage(`${path}:${n}: not a botctl audit anchor line`);
  return { ...a, where: `the anchor at ${path}:${n} (${a.ts})` };
}

function parseRecordLine(line) {
  let m = RECORD.exec(line);
  if (m) return { seq: Number(m[1]), body: "{" + m[2] + "}", prev: m[3], hash: m[4] };
  m = RAW.exec(line);
  if (m) {
    try {
      return { seq: Number(m[1]), body: JSON.parse(m[2]), prev: m[3], hash: m[4], raw: true };
    } catch {
      return null;
    }
  }
  return null;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const key = readKey(opts.keyFile);
  try {
    accessSync(opts.file, constants.R_OK); // fail early and clearly on an unreadable file
  } catch (e) {
    usage(`cannot read ${opts.file}: ${e.code || e.message}`);
  }
  // Pass 1: the checkpoint and the anchors (which records' hashes pass 2 must remember).
  let checkpoint = null;
  const anchors = [];
  for await (const [n, line] of lines(opts.file)) {
    if (line.startsWith('{"seq":') || !line.trim()) continue;
    let obj;
    try {
      obj = JSON.parse(line);
    } catch {
      continue; // pass 2 names it
    }
    if (obj && obj.checkpoint) checkpoint = obj.checkpoint;
    else if (obj && obj.anchor) anchors.push(anchorAt(obj.anchor, opts.file, n));
  }
  // Anchor files (`botctl audit anchor --out FILE`): one signed anchor per line, checked after the export's.
  for (const path of opts.anchorFiles) {
    let text;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      usage(`cannot read the anchor file ${path}: ${e.code || e.message}`);
    }
    text.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      let a;
      try {
        a = JSON.parse(line);
      } catch {
        usage(`${path}:${i + 1}: not a botctl audit anchor line (not JSON)`);
      }
      anchors.push(anchorAt(a, path, i + 1));
    });
  }
  const wanted = new Set(anchors.map((a) => a.seq));
  if (checkpoint) wanted.add(checkpoint.seq);
  const hashes = new Map();
  const sealed = []; // audit.seal_break records: a loss they put on record exempts the anchors it names

  const v = { ok: true, records: 0, head_seq: 0, head_hash: GENESIS, checkpoint_seq: checkpoint ? checkpoint.seq : null,
              first_bad_seq: null, problem: null, notes: [], anchors: 0 };
  const fail = (first, problem) => {
    if (v.ok) Object.assign(v, { ok: false, first_bad_seq: first, problem });
  };

  if (checkpoint && checkpointMac(key, checkpoint.seq, checkpoint.hash) !== checkpoint.mac) {
    fail(checkpoint.seq, "the checkpoint in vault.db does not authenticate (edited or forged)");
  }
  let expected = null;
  let prev = GENESIS;
  for await (const [n, line] of lines(opts.file)) {
    if (!v.ok) break;
    if (!line.trim() || (!line.startsWith('{"seq":') && /^\{"(checkpoint|anchor)":/.test(line))) continue;
    const rec = parseRecordLine(line);
    if (rec === null) {
      fail(expected ?? 1, `line ${n} is not a record line`);
      break;
    }
    if (expected === null) {
      expected = rec.seq;
      if (rec.seq !== 1) {
        prev = rec.prev;
        v.notes.push(`the export starts at record ${rec.seq}: its link to record ${rec.seq - 1} is not checked`);
      }
    }
    if (rec.seq !== expected) {
      fail(expected, rec.seq > expected ? `record ${expected} is missing (next is ${rec.seq})`
                                        : `record ${rec.seq} is out of order`);
      break;
    }
    const body = Buffer.from(rec.body, "utf8");
    if (rec.prev !== prev || link(key, prev, rec.seq, body) !== rec.hash) {
      fail(rec.seq, `record ${rec.seq} does not match its chain hash (edited, swapped or forged)`);
      break;
    }
    if (!rec.raw) {
      const problem = formatProblem(rec.body);
      if (problem) {
        fail(rec.seq, `record ${rec.seq} ${problem}`);
        break;
      }
    }
    if (wanted.has(rec.seq)) hashes.set(rec.seq, rec.hash);
    if (!rec.raw && rec.body.includes('"event":"audit.seal_break"')) {
      const b = JSON.parse(rec.body);
      if (b.event === "audit.seal_break") {
        const d = b.detail || {};
        sealed.push({ seq: rec.seq, ts: b.ts, expected: d.expected || {}, found: d.found || {} });
      }
    }
    prev = rec.hash;
    v.records++;
    v.head_seq = rec.seq;
    v.head_hash = rec.hash;
    expected++;
  }
  if (v.ok) {
    if (!checkpoint) {
      if (v.records) v.notes.push("no checkpoint line: truncation of the tail cannot be ruled out");
    } else if (v.head_seq < checkpoint.seq) {
      fail(v.head_seq + 1, `the log ends at record ${v.head_seq} but the checkpoint says ${checkpoint.seq} (tail truncated)`);
    } else if (checkpoint.seq > 0 && hashes.get(checkpoint.seq) !== checkpoint.hash) {
      fail(checkpoint.seq, `record ${checkpoint.seq} differs from the checkpoint (the log was rewritten)`);
    } else if (v.head_seq > checkpoint.seq) {
      v.notes.push(`${v.head_seq - checkpoint.seq} record(s) after the last checkpoint (a write was interrupted)`);
    }
  }
  if (v.ok && anchors.length) checkAnchors(v, anchors, hashes, key, sealed);
  return [v, opts];
}

function formatProblem(text) {
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    return "is not JSON";
  }
  if (obj.v === undefined) return null; // format 1: the MAC over the stored bytes is the whole check
  if (obj.v !== 2) return `has an unknown format version ${JSON.stringify(obj.v)}`;
  let canon;
  try {
    canon = canonicalize(obj);
  } catch (e) {
    return `cannot be canonicalised (${e.message})`;
  }
  return canon === text ? null : "is not in its canonical form (RFC 8785)";
}

function checkAnchors(v, anchors, hashes, key, sealed) {
  const pub = anchorPublicKey(key);
  for (const a of anchors) {
    const msg = Buffer.from(`botctl-audit-anchor/v1|${a.seq}|${a.hash}|${a.ts}`);
    let authentic = false;
    try {
      authentic = edVerify(null, msg, pub, Buffer.from(String(a.sig), "base64"));
    } catch {
      authentic = false;
    }
    if (!authentic) {
      v.ok = false;
      v.problem = `${a.where} is not signed by this vault's audit key (edited, or from another install)`;
      return;
    }
    const found = a.seq <= v.head_seq ? hashes.get(a.seq) : undefined;
    if (found !== a.hash) {
      const b = sealedLoss(sealed, a);
      if (b) {
        v.notes.push(`${a.where}: record ${a.seq} was lost in the break sealed at record ${b.seq}`);
      } else if (a.seq > v.head_seq) {
        Object.assign(v, { ok: false, first_bad_seq: v.head_seq + 1,
          problem: `the log ends at record ${v.head_seq} but ${a.where} says record ${a.seq} existed (rolled back or truncated)` });
        return;
      } else {
        Object.assign(v, { ok: false, first_bad_seq: a.seq,
          problem: `record ${a.seq} differs from ${a.where} (the log was rewritten, or rolled back and re-grown)` });
        return;
      }
    }
    v.anchors++;
  }
}

// A sealed break (an `audit.seal_break` record) states that the records between the head it found and the
// authentic checkpoint it expected were lost: an anchor older than the seal, naming one of them, is
// exempt (at the checkpoint's own seq only with the checkpoint's hash).
function sealedLoss(sealed, a) {
  for (const b of sealed) {
    const exp = b.expected, found = b.found;
    if (!(exp.authenticated && Number.isInteger(exp.seq) && Number.isInteger(found.seq))) continue;
    if (!(found.seq < a.seq && a.seq <= exp.seq) || a.ts > b.ts) continue;
    if (a.seq === exp.seq && exp.hash !== a.hash) continue;
    return b;
  }
  return null;
}

async function cli() {
  const [verdict, opts] = await main();
  if (opts.json) {
    process.stdout.write(JSON.stringify(verdict) + "\n");
  } else if (verdict.ok) {
    process.stdout.write(`audit log intact: ${verdict.records} records, head ${verdict.head_seq}` +
      (verdict.checkpoint_seq !== null ? `, checkpoint ${verdict.checkpoint_seq}` : "") +
      (verdict.anchors ? `, ${verdict.anchors} anchor(s) reached` : "") + "\n");
    for (const note of verdict.notes) process.stdout.write(`note: ${note}\n`);
  } else {
    const where = verdict.first_bad_seq !== null ? ` at record ${verdict.first_bad_seq}` : "";
    process.stderr.write(`audit log broken${where}: ${verdict.problem}\n`);
  }
  process.exit(verdict.ok ? 0 : 10);
}

// Run as a script; imported (the tests import `canonicalize`), do nothing.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) await cli();
