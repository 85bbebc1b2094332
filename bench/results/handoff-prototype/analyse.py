import sys, json, re, glob, statistics
from datetime import datetime
def t(s):
    s=s.replace('+00:00','').rstrip('Z')
    a,b=s.split('.') if '.' in s else (s,'0')
    return datetime.fromisoformat(a).timestamp()+float('0.'+b)
tl, logdir = sys.argv[1], sys.argv[2]
ho={}
for f in glob.glob(logdir+'/*.log'):
    for m in re.finditer(r'Task (q-\d+) in lane query skipped: handed off to (\S+?)"', open(f).read()):
        ho[m.group(1)]=m.group(2)
rows=[];pubs={}
for l in open(tl):
    f=l.split()
    if f[0]=='publish': pubs[f[1]]=t(f[2])
    elif f[0]=='run': rows.append((f[1],f[2],f[3],t(f[4]),t(f[5])))
by={r[0]:r for r in rows}
waits=sorted((by[q][3]-p)*1000 for q,p in pubs.items())
over=[]
for q,to in ho.items():
    if q not in pubs: continue
    p=pubs[q]; r=by[q]
    fs=[(x[4]-p)*1000 for x in rows if x[2]==to and x[4]>p+0.0015 and x[0]!=q and x[4]<=r[3]]
    if fs: over.append(round((r[3]-p)*1000-max(fs),1))
n=len(waits)
print(json.dumps({"queries":n,"p50_ms":round(waits[(n-1)//2],1),"max_ms":round(waits[-1],1),"handed_off":len(ho),
  "hand_off_cost_ms_median":statistics.median(over) if over else None,"hand_off_cost_ms_all":sorted(over)}))
