-- Takes the lease of a stream for a node, with a new epoch (fencing token), unless another
-- live node holds it (and the caller does not take over).
-- ARGV: prefix, stream, node id, incarnation, takeover (1/0), now ms.
-- Returns {1, epoch, previous owner} when granted, {0, owner, epoch, owner's beat, ms its
-- publisher had been silent at its last beat} when held.
local p, stream, id, inc = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lk = p .. ':lease:' .. stream
local l = redis.call('HMGET', lk, 'node', 'inc', 'epoch', 'idle')
if l[1] and not (l[1] == id and l[2] == inc) and ARGV[5] ~= '1' then
  local n = redis.call('HMGET', p .. ':node:' .. l[1], 'inc', 'beat')
  if n[1] and n[1] == l[2] then
    return {0, l[1], l[3], n[2] or '0', l[4] or '0'}
  end
end
-- The epoch grows with every owner: one more than the counter, and at least Redis's clock in
-- milliseconds, so it keeps growing after Redis lost its data (a stale owner that comes back
-- then holds an older epoch than the new one and is fenced).
local ek = p .. ':epoch:' .. stream
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = tonumber(redis.call('GET', ek) or '0') + 1
if epoch < now then epoch = now end
if l[3] and tonumber(l[3]) >= epoch then epoch = tonumber(l[3]) + 1 end
redis.call('SET', ek, epoch)
redis.call('HSET', lk, 'node', id, 'inc', inc, 'epoch', epoch, 'since', ARGV[6], 'idle', 0)
redis.call('SADD', p .. ':leases', stream)
return {1, epoch, l[1] or ''}
