-- A node's heartbeat, and the check of every lease it believes it holds, in one step.
-- ARGV: prefix, node id, incarnation, rtmp url, http url, ttl ms, now ms, started ms,
--       token candidate, sweep (1: also drop leases Redis names this process for that it
--       does not hold, e.g. brought back by a restart from an old snapshot), then
--       (stream, epoch, ms its publisher has been silent) triples.
-- Returns {beat, restored, token, lost...} where lost is (stream, owner, epoch) triples;
-- {-1, owner incarnation} when a newer process took this node id.
local p, id, inc = ARGV[1], ARGV[2], ARGV[3]
local ttl, now, started = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local nk = p .. ':node:' .. id
local cur = redis.call('HMGET', nk, 'inc', 'started')
if cur[1] and cur[1] ~= inc and tonumber(cur[2] or '0') > tonumber(started) then
  return {-1, cur[1]}
end
redis.call('HSET', nk, 'inc', inc, 'rtmp', ARGV[4], 'http', ARGV[5], 'started', started, 'seen', now)
local beat = redis.call('HINCRBY', nk, 'beat', 1)
redis.call('PEXPIRE', nk, ttl)
redis.call('SADD', p .. ':nodes', id)
redis.call('SET', p .. ':token', ARGV[9], 'NX')
local token = redis.call('GET', p .. ':token')
local out = {beat, 0, token}
local restored = 0
local mine = {}
for i = 11, #ARGV, 3 do
  local stream, epoch, idle = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local lk = p .. ':lease:' .. stream
  local ek = p .. ':epoch:' .. stream
  mine[stream] = true
  local l = redis.call('HMGET', lk, 'node', 'inc', 'epoch')
  local counter = tonumber(redis.call('GET', ek) or '0')
  if l[1] == id and l[2] == inc and tonumber(l[3]) == epoch then
    -- ours, as we believe
    if counter < epoch then redis.call('SET', ek, epoch) end
    redis.call('HSET', lk, 'idle', idle)
  elseif (not l[1] and counter <= epoch) or (l[1] and tonumber(l[3]) < epoch) then
    -- Redis lost the lease (a restart with empty data) or holds an older one than ours
    -- (restored first by a stale owner): the newest epoch is the owner.
    if counter < epoch then redis.call('SET', ek, epoch) end
    redis.call('HSET', lk, 'node', id, 'inc', inc, 'epoch', epoch, 'since', now, 'idle', idle)
    redis.call('SADD', p .. ':leases', stream)
    restored = restored + 1
  else
    table.insert(out, stream)
    table.insert(out, l[1] or '')
    table.insert(out, l[3] or tostring(counter))
  end
end
out[2] = restored
if ARGV[10] == '1' then
  for _, stream in ipairs(redis.call('SMEMBERS', p .. ':leases')) do
    if not mine[stream] then
      local lk = p .. ':lease:' .. stream
      local l = redis.call('HMGET', lk, 'node', 'inc', 'since')
      -- A lease taken in the last 5 s may be one this beat's list was read before.
      if l[1] == id and l[2] == inc and tonumber(l[3] or '0') < tonumber(now) - 5000 then
        redis.call('DEL', lk)
        redis.call('SREM', p .. ':leases', stream)
      end
    end
  end
end
return out
