import json, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows=[json.loads(l) for l in open("benchmarks/results/gpu-training/miniature-metrics.jsonl")]
ev=[r for r in rows if "val_overall" in r and r["stage"]=="teacher"]
print([(r["step"], round(r["val_overall"],3)) for r in ev])
fig,ax=plt.subplots(figsize=(6,3.6))
ax.plot([r["step"] for r in ev],[r["val_overall"] for r in ev],"o-",label="overall",lw=2,color="k")
for k in ("single_object","two_object","counting","colors","position","color_attr"):
    ax.plot([r["step"] for r in ev],[r["val_"+k] for r in ev],".--",lw=1,label=k)
ax.plot([3930],[0.5727],"*",ms=12,color="k",label="final 0.573 (50 steps, CFG 4.5, shift 2)")
ax.axhline(0.8,color="r",ls=":",label="target 0.80")
ax.set_xlabel("teacher training step (H100, miniature gpu preset)"); ax.set_ylabel("Shapes-GenEval (validation)")
ax.set_ylim(0,1.05); ax.legend(fontsize=6,ncol=2,loc="lower right"); ax.set_title("shapes-teacher learning curve (5.2 GPU-minutes)")
fig.tight_layout(); fig.savefig("benchmarks/results/eval-learning-curve/teacher_learning_curve.png",dpi=90)
