// Two kafkajs consumers in one group: their assignments once both have partitions, then the first
// one's assignment after the second left.
//   {"bootstrap", "topic", "groupId", "partitions", "timeoutMs"}
'use strict'
const { kafka, main, sleep } = require('./common')

main(async arg => {
  const k = kafka(arg)
  const assigned = [[], []]
  const members = [0, 1].map(i => {
    const c = k.consumer({ groupId: arg.groupId, sessionTimeout: 6000, heartbeatInterval: 300, maxWaitTimeInMs: 100 })
    c.on(c.events.GROUP_JOIN, e => { assigned[i] = (e.payload.memberAssignment[arg.topic] || []).slice().sort() })
    return c
  })
  const deadline = Date.now() + (arg.timeoutMs || 20000)
  const live = new Set()
  try {
    for (const c of members) {
      await c.connect()
      live.add(c)
      await c.subscribe({ topics: [arg.topic], fromBeginning: true })
      await c.run({ eachMessage: async () => {} })
    }
    // Settled: both own partitions, none twice, all of them (a member shows its old assignment until
    // it has rejoined).
    const settled = () => {
      const all = new Set([...assigned[0], ...assigned[1]])
      return assigned[0].length && assigned[1].length &&
        all.size === assigned[0].length + assigned[1].length && all.size === arg.partitions
    }
    while (!settled() && Date.now() < deadline) await sleep(100)
    const before = assigned.map(a => a.slice())
    await members[1].disconnect()
    live.delete(members[1])
    while (assigned[0].length < arg.partitions && Date.now() < deadline) await sleep(100)
    return { before, after: assigned[0] }
  } finally {
    for (const c of live) await c.disconnect()
  }
})
