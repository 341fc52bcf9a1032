-- Who owns each stream: {node, epoch, rtmp, http} when a live node holds its lease, else {}.
-- ARGV: prefix, then streams.
local p = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local l = redis.call('HMGET', p .. ':lease:' .. ARGV[i], 'node', 'inc', 'epoch')
  local found = {}
  if l[1] then
    local n = redis.call('HMGET', p .. ':node:' .. l[1], 'inc', 'rtmp', 'http')
    if n[1] and n[1] == l[2] then
      found = {l[1], l[3], n[2], n[3]}
    end
  end
  table.insert(out, found)
end
return out
