// Shared by the kafkajs drivers: one JSON argument in (argv[2], or stdin), one JSON line out.
//
//   node <script>.js '{"bootstrap": "host:port", ...}'     or     echo '{...}' | node <script>.js
//   -> {"ok": true, "result": ...}   or   {"ok": false, "error": {"kind": "MESSAGE_TOO_LARGE", "message": "..."}}
//
// Keys, values and header values travel base64-encoded (null stays null). kafkajs logs go to stderr,
// so stdout carries only the answer.
'use strict'

const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')

// Codecs beyond gzip are plug-ins in kafkajs, registered the way its documentation shows.
const codecs = ['none', 'gzip']
try {
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
  codecs.push('snappy')
} catch (e) {}
try {
  const LZ4Codec = require('kafkajs-lz4')
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
  codecs.push('lz4')
} catch (e) {}
try {
  // @kafkajs/zstd's native binding (cppzst) no longer builds on Node 20; zstd-napi does.
  const zstd = require('zstd-napi')
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress (encoder) { return zstd.compress(encoder.buffer) },
    async decompress (buffer) { return zstd.decompress(buffer) },
  })
  codecs.push('zstd')
} catch (e) {}

const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

const stderrLogger = () => ({ namespace, level, label, log }) => {
  process.stderr.write(`${label} [${namespace}] ${log.message} ${JSON.stringify(log)}\n`)
}

function kafka (arg) {
  return new Kafka({
    clientId: 'kbroker-compat',
    brokers: arg.bootstrap.split(','),
    logLevel: logLevel.ERROR,
    logCreator: stderrLogger,
    connectionTimeout: 5000,
    requestTimeout: arg.timeoutMs || 20000,
    retry: { retries: arg.retries === undefined ? 5 : arg.retries, initialRetryTime: 100, maxRetryTime: 2000 },
  })
}

const b64 = s => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))
const unb64 = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))

// [[name, b64value], ...] -> kafkajs headers object; a repeated name becomes an array of values.
function headersIn (pairs) {
  if (!pairs || pairs.length === 0) return undefined
  const out = {}
  for (const [name, value] of pairs) {
    const v = b64(value)
    if (name in out) out[name] = [].concat(out[name], [v])
    else out[name] = v
  }
  return out
}

function headersOut (headers) {
  const out = []
  for (const [name, value] of Object.entries(headers || {})) {
    for (const v of [].concat(value)) out.push([name, unb64(v)])
  }
  return out
}

function messageIn (m) {
  const out = { key: b64(m.key), value: b64(m.value) }
  const headers = headersIn(m.headers)
  if (headers) out.headers = headers
  if (m.partition !== null && m.partition !== undefined) out.partition = m.partition
  if (m.timestamp !== null && m.timestamp !== undefined) out.timestamp = String(m.timestamp)
  return out
}

function recordOut (partition, message) {
  return {
    partition,
    offset: Number(message.offset),
    key: unb64(message.key),
    value: unb64(message.value),
    headers: headersOut(message.headers),
    timestamp: Number(message.timestamp),
  }
}

// The Kafka error name inside whatever kafkajs threw (retries and aggregates wrap the cause).
function errorKind (e) {
  const seen = new Set()
  const stack = [e]
  while (stack.length) {
    const x = stack.pop()
    if (!x || typeof x !== 'object' || seen.has(x)) continue
    seen.add(x)
    if (x.type && typeof x.type === 'string') return x.type
    stack.push(x.originalError, x.cause)
    if (Array.isArray(x.errors)) stack.push(...x.errors)
  }
  return null
}

function errorMessage (e) {
  const parts = []
  let x = e
  while (x && parts.length < 4) {
    parts.push(`${x.name || 'Error'}: ${x.message}`)
    x = x.originalError || x.cause
  }
  if (e && Array.isArray(e.errors)) parts.push(...e.errors.slice(0, 3).map(x => `${x.name}: ${x.message}`))
  return parts.join(' <- ')
}

// Write the answer and exit once it is flushed: stdout to a pipe is asynchronous in Node, and exiting
// straight away cuts a large answer short.
function answer (obj, code) {
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code))
}

// The argument: argv[2] if given, else all of stdin (large records do not fit in one argv string).
function readArg () {
  if (process.argv[2] !== undefined) return Promise.resolve(process.argv[2])
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', c => chunks.push(c))
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    process.stdin.on('error', reject)
  })
}

function main (fn) {
  readArg().then(text => {
    let arg
    try {
      arg = JSON.parse(text)
    } catch (e) {
      return answer({ ok: false, error: { kind: 'OTHER', message: `bad argument: ${e}` } }, 2)
    }
    fn(arg).then(
      result => answer({ ok: true, result: result === undefined ? null : result }, 0),
      e => answer({ ok: false, error: { kind: errorKind(e), message: errorMessage(e) } }, 1))
  })
}

function sleep (ms) { return new Promise(resolve => setTimeout(resolve, ms)) }

module.exports = { kafka, codecs, COMPRESSION, messageIn, recordOut, main, sleep }
