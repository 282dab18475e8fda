#!/usr/bin/env node
// avsc (npm) half of avro-rpc's interop tests. The contract is
// ../README.md (protocols, values, server behaviour) and ./README.md (this
// process's arguments and output). Two modes:
//
//   node interop.js server [--proto v1|v2|simple] [--max-seconds S]
//     avsc Server over (a) avsc's stateful channels on raw TCP, which avsc
//     frames the way Java's NettyTransportCodec does (serial, buffer count,
//     buffers), and (b) avsc's stateless channels, one per HTTP POST (the
//     spec's buffer list ending with an empty buffer). Both on 127.0.0.1.
//     Prints `READY netty=<port> http=<port>`; exits on stdin EOF.
//
//   node interop.js client --transport netty|http --port N
//       [--proto v1|v2|simple] [--server-proto v1|v2|simple]
//     Runs the checks against a server, one `PASS name` / `FAIL name: why`
//     line each, then `<n> passed, <m> failed`; exit 0 iff all passed.
'use strict';

const avro = require('avsc');
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const stream = require('stream');
const util = require('util');

const PROTOCOLS = path.join(__dirname, '..', 'protocols');
const GOLDEN = path.join(__dirname, '..', 'golden', 'datum');
const NS = 'org.cinerec.interop.';
const KINDS = ['ALPHA', 'BETA', 'GAMMA', 'DELTA'];
const ITEMS = ['canonical', 'minimal', 'extremes', 'textual'];

// ------------------------------------------------------------------ args

function parseArgs(argv) {
  const opts = {_: []};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      opts[a.slice(2)] = argv[++i];
    } else {
      opts._.push(a);
    }
  }
  return opts;
}

function usage(msg) {
  process.stderr.write(`interop.js: ${msg}\n`);
  process.exit(2);
}

// -------------------------------------------------------------- protocols

// avsc's default `long` is a JS number and refuses values beyond 2^53; the
// contract uses the whole i64 range, so every service here reads and writes
// `long` as a BigInt (avsc's documented `LongType.__with` hook).
const BIG_LONG = avro.types.LongType.__with({
  fromBuffer: (buf) => buf.readBigInt64LE(),
  toBuffer: (n) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt.asIntN(64, BigInt(n)));
    return buf;
  },
  fromJSON: (any) => BigInt(any),
  toJSON: (n) => Number(n),
  isValid: (n) => typeof n === 'bigint' && BigInt.asIntN(64, n) === n,
  compare: (a, b) => (a === b ? 0 : a < b ? -1 : 1),
});

function protocolFile(name) {
  switch (name) {
    case 'v1': return path.join(PROTOCOLS, 'interop.avpr');
    case 'v2': return path.join(PROTOCOLS, 'interop-v2.avpr');
    case 'simple': return path.join(PROTOCOLS, 'simple.avpr');
    default: usage(`unknown protocol ${name} (v1, v2 or simple)`);
  }
}

/** An avsc Service: BigInt longs, every union wrapped (`{string: "x"}`). */
function loadService(name) {
  const text = fs.readFileSync(protocolFile(name), 'utf8');
  return avro.Service.forProtocol(JSON.parse(text), {
    registry: {long: BIG_LONG},
    wrapUnions: true,
  });
}

// ----------------------------------------------------------- transports

/** Collects what is written, then hands the whole body to `onBody`. */
function collector(onBody) {
  const chunks = [];
  return new stream.Writable({
    write(chunk, _enc, cb) { chunks.push(chunk); cb(); },
    final(cb) { onBody(Buffer.concat(chunks)); cb(); },
  });
}

/**
 * avsc stateless transport over HTTP: one POST per call, sent with a
 * Content-Length (the spec; avsc would otherwise stream it chunked).
 */
function httpTransport(port) {
  const agent = new http.Agent({keepAlive: true});
  return (cb) => collector((body) => {
    http.request({
      host: '127.0.0.1', port, method: 'POST', path: '/', agent,
      headers: {'Content-Type': 'avro/binary', 'Content-Length': body.length},
    }).on('response', (res) => {
      if (res.statusCode !== 200) {
        cb(new Error(`HTTP status ${res.statusCode}`));
        res.resume();
        return;
      }
      cb(null, res);
    }).on('error', cb).end(body);
  });
}

// --------------------------------------------------------------- server

function wrapped(branch, value) {
  return value === null ? null : {[branch]: value};
}

function interopError(code, message, retryable) {
  return {[NS + 'InteropError']: {
    code, message, retryable,
    detail: code % 2 !== 0 ? {string: `detail for ${code}`} : null,
  }};
}

function summarize(item) {
  let weightSum = item.main.weight;
  for (const p of item.parts) weightSum = BigInt.asIntN(64, weightSum + p.weight);
  let attrSum = 0n;
  for (const v of Object.values(item.attrs)) attrSum = BigInt.asIntN(64, attrSum + v);
  const extra = item.extra === null ? 'null' : Object.keys(item.extra)[0].replace(NS, '');
  return {
    id: item.id,
    nameUtf8Len: Buffer.byteLength(item.name, 'utf8'),
    partCount: item.parts.length,
    weightSum,
    tagsJoined: item.tags.join(','),
    attrSum,
    payloadLen: item.payload.length,
    tokenHex: item.token.toString('hex'),
    scoreTimesCount: item.score * item.count,
    ratioDoubled: Math.fround(item.ratio * 2),
    flagNegated: !item.flag,
    nextKind: KINDS[(KINDS.indexOf(item.kind) + 1) % KINDS.length],
    noteOrDefault: item.note === null ? '<none>' : item.note.string,
    extraBranch: extra,
  };
}

/** The contract's deterministic behaviour (../README.md "The protocol"). */
function interopHandlers(server, version) {
  const events = new Map();
  server
    .onEcho((item, cb) => cb(null, item))
    .onSummarize((item, cb) => cb(null, summarize(item)))
    .onAdd((a, b, cb) => cb(null, BigInt.asIntN(64, a + b)))
    .onRange((start, count, cb) => {
      if (count < 0 || count > 10000) {
        cb(interopError(400, `count out of range: ${count}`, false));
        return;
      }
      const parts = [];
      for (let i = 0n; i < BigInt(count); i++) {
        const n = BigInt.asIntN(64, start + i);
        const part = {name: `part-${n}`, weight: BigInt.asIntN(64, n * 10n)};
        if (version === 'v1') part.legacy = `legacy-${n}`;
        parts.push(part);
      }
      cb(null, parts);
    })
    .onFail((code, message, cb) => {
      if (code === 0) cb(null, `ok: ${message}`);
      else if (code > 0) cb(interopError(code, message, code >= 500));
      else cb({string: `undeclared: ${message}`});
    })
    .onNotify((channel, event) => {
      if (!events.has(channel)) events.set(channel, []);
      events.get(channel).push(event);
    })
    .onDrain((channel, cb) => {
      const got = events.get(channel) || [];
      events.delete(channel);
      cb(null, got);
    })
    .onNop((cb) => cb(null, null));
}

/** simple.avpr (Apache Avro's interop protocol), as its Java test server. */
function simpleHandlers(server) {
  server
    .onHello((greeting, cb) => cb(null, 'goodbye'))
    .onEcho((record, cb) => cb(null, record))
    .onEchoBytes((data, cb) => cb(null, data))
    .onAdd((arg1, arg2, cb) => cb(null, arg1 + arg2))
    .onError((cb) => cb({'org.apache.avro.test.TestError': {message: 'an error'}}))
    .onAck(() => { simpleAcks++; });
}
let simpleAcks = 0;

function runServer(opts) {
  const proto = opts.proto || 'v1';
  const svc = loadService(proto);
  const server = svc.createServer({silent: true});
  if (proto === 'simple') simpleHandlers(server);
  else interopHandlers(server, proto);

  // Stateful channels: one per TCP connection, avsc's Netty-compatible codec.
  const tcp = net.createServer((socket) => {
    socket.on('error', () => {});
    server.createChannel(socket);
  });
  // Stateless channels: one per POST; the reply is buffered and sent with a
  // Content-Length and Content-Type avro/binary.
  const web = http.createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    server.createChannel((cb) => {
      cb(null, collector((body) => {
        res.writeHead(200, {'Content-Type': 'avro/binary', 'Content-Length': body.length});
        res.end(body);
      }));
      return req;
    });
  });
  let listening = 0;
  const ready = () => {
    if (++listening === 2) {
      process.stdout.write(`READY netty=${tcp.address().port} http=${web.address().port}\n`);
    }
  };
  tcp.listen(0, '127.0.0.1', ready);
  web.listen(0, '127.0.0.1', ready);

  const stop = (code) => () => process.exit(code);
  process.stdin.on('end', stop(0)).on('close', stop(0)).resume();
  process.on('SIGTERM', stop(0));
  setTimeout(stop(3), 1000 * Number(opts['max-seconds'] || 900)).unref();
}

// --------------------------------------------------------------- client

function goldenDatum(file, type) {
  const hex = fs.readFileSync(path.join(GOLDEN, file), 'utf8').replace(/\s+/g, '');
  return type.fromBuffer(Buffer.from(hex, 'hex'));
}

/** What `echo(item)` returns to a `cv` client from an `sv` server. */
function echoExpected(svc, which, cv, sv) {
  const item = goldenDatum(`item-${which}.${cv}.hex`, svc.type(NS + 'Item'));
  if (cv === 'v2' && sv === 'v1') item.priority = 7;
  if (cv === 'v1' && sv === 'v2') {
    const reset = (p) => { p.legacy = 'legacy-default'; };
    reset(item.main);
    item.parts.forEach(reset);
    if (item.extra && item.extra[NS + 'Part']) reset(item.extra[NS + 'Part']);
  }
  return item;
}

function rangeExpected(svc, start, count, cv, sv) {
  const Part = svc.type(NS + 'Part');
  const parts = [];
  for (let i = 0n; i < BigInt(count); i++) {
    const n = BigInt.asIntN(64, start + i);
    const p = {name: `part-${n}`, weight: BigInt.asIntN(64, n * 10n)};
    if (cv === 'v1') p.legacy = sv === 'v2' ? 'legacy-default' : `legacy-${n}`;
    parts.push(Part.clone(p));
  }
  return parts;
}

function show(v) {
  const s = util.inspect(v, {depth: 4, breakLength: Infinity});
  return s.length > 200 ? s.slice(0, 200) + '...' : s;
}

/**
 * Plain data for comparison: records and wrapped-union branches lose their
 * avsc classes, Buffers become tagged hex, BigInts and numbers stay as they
 * are (so `1n` differs from `1`, and `-0` from `0`).
 */
function plain(v) {
  if (Buffer.isBuffer(v)) return {bytes: v.toString('hex')};
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = plain(v[k]);
    return out;
  }
  return v;
}

/** Throws unless `got` is exactly `expected` (types, -0, bit-equal floats). */
function same(what, expected, got) {
  if (!util.isDeepStrictEqual(plain(expected), plain(got))) {
    throw new Error(`${what}: expected ${show(expected)}, got ${show(got)}`);
  }
}

function expectDeclared(what, expected, err) {
  same(what, expected, err);
}

class Checks {
  constructor() { this.passed = 0; this.failed = 0; }
  async run(name, fn) {
    try {
      await fn();
      this.passed++;
      process.stdout.write(`PASS ${name}\n`);
    } catch (e) {
      this.failed++;
      process.stdout.write(`FAIL ${name}: ${e && e.message ? e.message : e}\n`);
    }
  }
}

/**
 * A client and one channel to the server. Resolves once the channel's first
 * handshake completed (a ping for stateful channels), with the handshakes
 * seen so far.
 */
function connect(svc, opts) {
  const client = svc.createClient({strictTypes: true, timeout: Number(opts['call-timeout-ms'] || 5000)});
  const handshakes = [];
  client.on('error', () => {});
  let channel;
  if (opts.transport === 'netty') {
    const socket = net.connect({host: '127.0.0.1', port: Number(opts.port)});
    socket.on('error', (e) => channel && channel.destroy(e));
    channel = client.createChannel(socket, {scope: undefined});
  } else if (opts.transport === 'http') {
    channel = client.createChannel(httpTransport(Number(opts.port)));
  } else {
    usage(`--transport must be netty or http, not ${opts.transport}`);
  }
  channel.on('handshake', (hreq, hres) => handshakes.push({hreq, hres}));
  const call = (name, ...args) => new Promise((resolve, reject) => {
    client.emitMessage(name, argsRecord(svc, name, args), {}, (err, res) => {
      if (err) reject(err); else resolve(res);
    });
  });
  return {client, channel, handshakes, call, close: () => { channel.destroy(true); }};
}

function argsRecord(svc, name, args) {
  const msg = svc.message(name);
  const rec = {};
  msg.requestType.getFields().forEach((f, i) => { rec[f.name] = args[i]; });
  return rec;
}

/** Waits until the channel saw a BOTH or CLIENT handshake response. */
function handshaken(conn, ms) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      const done = conn.handshakes.find((h) => h.hres.match !== 'NONE');
      if (done) resolve(done);
      else if (conn.channel.destroyed) reject(new Error('channel destroyed before the handshake'));
      else if (Date.now() - t0 > ms) reject(new Error(`no handshake within ${ms} ms (saw ${conn.handshakes.map((h) => h.hres.match)})`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

async function interopChecks(svc, opts, checks) {
  const cv = opts.proto || 'v1';
  const sv = opts['server-proto'] || cv;
  const conn = connect(svc, opts);
  const {call} = conn;
  const callTimeout = Number(opts['call-timeout-ms'] || 5000);

  await checks.run('ping', async () => {
    if (opts.transport === 'http') await call('nop');
    const h = await handshaken(conn, callTimeout);
    const matches = conn.handshakes.map((x) => x.hres.match).join(',');
    // BOTH without a protocol means the server's hash is ours: same protocol.
    const proto = conn.handshakes.map((x) => x.hres.serverProtocol).find((p) => p);
    if (!proto && h.hres.match !== 'BOTH') throw new Error(`server never sent its protocol (matches ${matches})`);
    const p = proto ? JSON.parse(proto) : svc.protocol;
    if (p.protocol !== 'Interop' || p.namespace !== 'org.cinerec.interop') {
      throw new Error(`server protocol is ${p.namespace}.${p.protocol}`);
    }
    const item = p.types.find((t) => t.name === 'Item');
    const hasPriority = item.fields.some((f) => f.name === 'priority');
    if (hasPriority !== (sv === 'v2')) throw new Error(`server protocol is not ${sv}`);
    if (!['BOTH', 'CLIENT'].includes(h.hres.match)) throw new Error(`handshake ended ${h.hres.match}`);
  });
  await checks.run('nop', async () => same('nop', null, await call('nop')));
  for (const [name, a, b, sum] of [
    ['add.small', 40n, 2n, 42n],
    ['add.negative', -5n, 3n, -2n],
    ['add.large', 1n << 40n, -(1n << 41n), -(1n << 40n)],
    ['add.wrap', (1n << 63n) - 1n, 1n, -(1n << 63n)],
  ]) {
    await checks.run(name, async () => same('result', sum, await call('add', a, b)));
  }
  const Item = svc.type(NS + 'Item');
  const Summary = svc.type(NS + 'Summary');
  for (const which of ITEMS) {
    await checks.run(`echo.${which}`, async () => {
      const item = goldenDatum(`item-${which}.${cv}.hex`, Item);
      same('item', echoExpected(svc, which, cv, sv), await call('echo', item));
    });
  }
  for (const which of ITEMS) {
    await checks.run(`summarize.${which}`, async () => {
      const item = goldenDatum(`item-${which}.${cv}.hex`, Item);
      same('summary', goldenDatum(`summary-${which}.hex`, Summary), await call('summarize', item));
    });
  }
  for (const [name, start, count] of [['range.small', 5n, 3], ['range.empty', 0n, 0], ['range.large', -2n, 1000]]) {
    await checks.run(name, async () => {
      same('parts', rangeExpected(svc, start, count, cv, sv), await call('range', start, count));
    });
  }
  const Err = svc.type(NS + 'InteropError');
  const declared = (code, message) => ({[NS + 'InteropError']: Err.clone({
    code, message, retryable: code >= 500,
    detail: code % 2 !== 0 ? {string: `detail for ${code}`} : null,
  }, {wrapUnions: true})});
  const rejects = async (p) => {
    try {
      const v = await p;
      throw new Error(`expected an error, got result ${show(v)}`);
    } catch (e) {
      if (e && e.message && e.message.startsWith('expected an error')) throw e;
      return e;
    }
  };
  for (const [name, count] of [['range.error.negative', -1], ['range.error.too-big', 10001]]) {
    await checks.run(name, async () => {
      expectDeclared('error', declared(400, `count out of range: ${count}`), await rejects(call('range', 0n, count)));
    });
  }
  await checks.run('fail.ok', async () => same('result', 'ok: fine', await call('fail', 0, 'fine')));
  await checks.run('fail.declared-404', async () =>
    expectDeclared('error', declared(404, 'not found'), await rejects(call('fail', 404, 'not found'))));
  await checks.run('fail.declared-503', async () =>
    expectDeclared('error', declared(503, 'unavailable'), await rejects(call('fail', 503, 'unavailable'))));
  await checks.run('fail.undeclared', async () =>
    same('error', {string: 'undeclared: boom'}, await rejects(call('fail', -1, 'boom'))));

  const channel = `js-${opts.transport}-${cv}-${process.pid}-${Date.now()}`;
  await checks.run('drain.empty', async () => same('events', [], await call('drain', channel)));
  await checks.run('notify.one-way', async () => {
    if (!svc.message('notify').oneWay) throw new Error('notify is not one-way');
    for (const e of ['e1', 'e2', 'e3']) await call('notify', channel, e);
    let got = [];
    const t0 = Date.now();
    while (got.length < 3 && Date.now() - t0 < callTimeout) {
      got = got.concat(await call('drain', channel));
      if (got.length < 3) await new Promise((r) => setTimeout(r, 20));
    }
    same('drained', ['e1', 'e2', 'e3'], got.slice().sort());
    same('second drain', [], await call('drain', channel));
  });
  await checks.run('concurrent', async () => {
    const calls = [];
    for (let i = 0n; i < 32n; i++) calls.push(call('add', i, 1000n * i).then((r) => same(`add#${i}`, 1001n * i, r)));
    await Promise.all(calls);
  });
  await checks.run('reconnect', async () => {
    const c2 = connect(svc, opts);
    try {
      same('result', 7n, await c2.call('add', 3n, 4n));
    } finally {
      c2.close();
    }
  });
  conn.close();
}

/** simple.avpr against a server implementing it like Avro's test servers. */
async function simpleChecks(svc, opts, checks) {
  const conn = connect(svc, opts);
  const {call} = conn;
  const TestRecord = svc.type('org.apache.avro.test.TestRecord');
  await checks.run('simple.hello', async () => same('hello', 'goodbye', await call('hello', 'bonjour')));
  await checks.run('simple.echo', async () => {
    const rec = TestRecord.clone({
      name: 'foo', kind: 'BAR', hash: Buffer.from('0123456789abcdef'),
    }, {wrapUnions: true});
    same('echo', rec, await call('echo', rec));
  });
  await checks.run('simple.add', async () => same('add', 3, await call('add', 1, 2)));
  await checks.run('simple.echoBytes', async () => {
    const b = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    same('echoBytes', b, await call('echoBytes', b));
  });
  await checks.run('simple.error', async () => {
    let err;
    try {
      await call('error');
    } catch (e) {
      err = e;
    }
    const TestError = svc.type('org.apache.avro.test.TestError');
    same('error', {'org.apache.avro.test.TestError': TestError.clone({message: 'an error'})}, err);
  });
  await checks.run('simple.ack', async () => {
    await call('ack');
    same('add after ack', 5, await call('add', 2, 3));
  });
  conn.close();
}

async function runClient(opts) {
  const proto = opts.proto || 'v1';
  if (!opts.port || !opts.transport) usage('client needs --transport and --port');
  setTimeout(() => {
    process.stdout.write(`FAIL client: --max-seconds elapsed\n`);
    process.exit(2);
  }, 1000 * Number(opts['max-seconds'] || 120)).unref();
  const svc = loadService(proto);
  const checks = new Checks();
  if (proto === 'simple') await simpleChecks(svc, opts, checks);
  else await interopChecks(svc, opts, checks);
  process.stdout.write(`${checks.passed} passed, ${checks.failed} failed\n`);
  process.exit(checks.failed === 0 && checks.passed > 0 ? 0 : 1);
}

const opts = parseArgs(process.argv.slice(2));
switch (opts._[0]) {
  case 'server': runServer(opts); break;
  case 'client':
    runClient(opts).catch((e) => {
      process.stdout.write(`FAIL client: ${e && e.stack ? e.stack : e}\n0 passed, 1 failed\n`);
      process.exit(1);
    });
    break;
  default: usage('first argument must be server or client');
}
