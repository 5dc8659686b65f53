// Consume with kafkajs's consumer, which always joins a group (kafkajs has no assign()).
//   {"bootstrap", "topic", "groupId", "count", "readCommitted", "commit", "timeoutMs"}
// Takes `count` records from the beginning (or the group's committed offsets), then, if "commit",
// commits the position after exactly those records, and leaves the group.
'use strict'
const { kafka, recordOut, main } = require('./common')

main(async arg => {
  const consumer = kafka(arg).consumer({
    groupId: arg.groupId,
    readUncommitted: !arg.readCommitted,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  })
  await consumer.connect()
  const out = []
  try {
    await consumer.subscribe({ topics: [arg.topic], fromBeginning: true })
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, arg.timeoutMs || 20000)
      consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (out.length < arg.count) out.push(recordOut(partition, message))
          if (out.length >= arg.count) {
            clearTimeout(timer)
            resolve()
          }
        },
      }).catch(reject)
    })
    if (arg.commit && out.length) {
      const last = {}
      for (const r of out) last[r.partition] = Math.max(last[r.partition] ?? -1, r.offset)
      await consumer.commitOffsets(Object.entries(last).map(([partition, offset]) => (
        { topic: arg.topic, partition: Number(partition), offset: String(offset + 1) })))
    }
  } finally {
    await consumer.disconnect()
  }
  return out
})
