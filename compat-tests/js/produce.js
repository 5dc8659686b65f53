// Produce with kafkajs's producer: plain, idempotent, or two transactions (one committed, one aborted).
//   {"bootstrap", "topic", "messages": [{"key", "value", "headers": [[name, value]], "partition", "timestamp"}],
//    "compression": "gzip", "idempotent": true|false|null, "timeoutMs"}
//   {"bootstrap", "topic", "transactionalId", "committed": [...], "aborted": [...]}
'use strict'
const { kafka, COMPRESSION, messageIn, main } = require('./common')

main(async arg => {
  const k = kafka(arg)
  if (arg.transactionalId) {
    const producer = k.producer({ transactionalId: arg.transactionalId, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      const committed = await producer.transaction()
      await committed.send({ topic: arg.topic, messages: arg.committed.map(messageIn) })
      await committed.commit()
      const aborted = await producer.transaction()
      await aborted.send({ topic: arg.topic, messages: arg.aborted.map(messageIn) })
      await aborted.abort()
    } finally {
      await producer.disconnect()
    }
    return null
  }
  const options = {}
  if (arg.idempotent !== null && arg.idempotent !== undefined) {
    options.idempotent = arg.idempotent
    if (arg.idempotent) options.maxInFlightRequests = 1
  }
  const producer = k.producer(options)
  await producer.connect()
  try {
    return await producer.send({
      topic: arg.topic,
      messages: arg.messages.map(messageIn),
      acks: -1,
      timeout: arg.timeoutMs || 20000,
      compression: COMPRESSION[arg.compression || 'none'],
    })
  } finally {
    await producer.disconnect()
  }
})
