import sys, torch, numpy as np
sys.path[:0] = ['/work/diva/src']
torch.set_num_threads(1)
from qrobust.attacks.runner import craft
from qrobust.attacks.victims import attack_copy, module_victim, open_module, open_runtime
from qrobust.attacks.threats import ThreatModel
from qrobust.models import input_spec
from qrobust.data.datasets import DATASETS
from qrobust.pipeline.model_id import ModelId
import os
os.chdir('/work/main')
from qrobust.data.splits import eval_split
x, y = eval_split(); x, y = x[:200], y[:200]
spec = input_spec(DATASETS.get('fashion_mnist'))
q = ModelId.parse(sys.argv[1]); f = q.parent
twin = open_module(ThreatModel.WHITE_QNN_STE, q, spec)
fm = open_module(ThreatModel.WHITE_FLOAT, f, spec)
rq, rf = open_runtime(q), open_runtime(f)
both = (rq.predict(x) == y) & (rf.predict(x) == y)
for eps in (0.02, 0.05):
  for name, opts in [("linf_pgd", {"steps": 20, "rel_stepsize": 0.1}), *[("diva", {"steps": 20, "rel_stepsize": 0.1, "c": c, "log_scores": l}) for c in (1.0, 3.0) for l in (True, False)]]:
    v = module_victim(twin, torch.device('cpu')); v.reference = attack_copy(fm, torch.device('cpu'))
    adv = craft(v, name, opts, (eps,), x, y, batch_size=200, seed=0).x_adv[0]
    qw = rq.predict(adv) != y; fr = rf.predict(adv) == y
    print(eps, name, opts.get("c"), opts.get("log_scores"), "q wrong %.2f evasive %.2f" % (qw[both].mean(), (qw & fr)[both].mean()), flush=True)
