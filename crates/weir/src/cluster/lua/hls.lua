-- A stream's HLS numbering, kept so a new origin continues it (media sequence, part and init
-- numbers, discontinuity sequence: each only ever grows).
-- ARGV: prefix, stream, container, then for a read nothing more; for a write: node id,
-- incarnation, epoch, sequence, part, init, discontinuity sequence (written only while the
-- caller holds the stream's lease with that epoch).
-- Returns {sequence, part, init, discontinuity} (a read; {} when unknown) or 1/0 (a write).
local p, stream, container = ARGV[1], ARGV[2], ARGV[3]
local hk = p .. ':hls:' .. stream .. ':' .. container
if #ARGV == 3 then
  local v = redis.call('HMGET', hk, 'sequence', 'part', 'init', 'discontinuity')
  if not v[1] then return {} end
  return {v[1], v[2] or '0', v[3] or '0', v[4] or '0'}
end
local l = redis.call('HMGET', p .. ':lease:' .. stream, 'node', 'inc', 'epoch')
if l[1] ~= ARGV[4] or l[2] ~= ARGV[5] or l[3] ~= ARGV[6] then
  return 0
end
local fields = {'sequence', 'part', 'init', 'discontinuity'}
for i, field in ipairs(fields) do
  local new = tonumber(ARGV[6 + i])
  local old = tonumber(redis.call('HGET', hk, field) or '0')
  if new > old then redis.call('HSET', hk, field, new) end
end
return 1
