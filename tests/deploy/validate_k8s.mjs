// validate_k8s.mjs: every manifest in deploy/k8s checked against the
// Kubernetes API schemas (kubernetes-models: the OpenAPI schemas of the
// API compiled for ajv: wrong types, missing required fields and bad enum
// values are refused; those schemas allow unknown fields, so a misspelt
// optional field is not caught here), then
// against this project's rules: probes, resources, non-root, read-only root
// filesystem, a preStop that fits in the grace period, and names and
// selectors that agree across the Deployment, Service, HPA and PDB.
// Usage: node validate_k8s.mjs DIR. Prints "N passed, M failed"; exit 1
// on any failure.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const dir = process.argv[2];
let passed = 0;
const failed = [];
function check(cond, what) {
  if (cond) passed++;
  else {
    failed.push(what);
    console.log("FAIL:", what);
  }
  return cond;
}

// apiVersion -> module path of kubernetes-models
function modulePath(apiVersion) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  return group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
}

const docs = [];
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()) {
  if (file === "kustomization.yaml") continue;
  const text = fs.readFileSync(path.join(dir, file), "utf8");
  for (const d of YAML.parseAllDocuments(text)) {
    if (d.errors.length) {
      check(false, `${file}: YAML error: ${d.errors[0].message}`);
      continue;
    }
    const obj = d.toJS();
    if (obj) docs.push({ file, obj });
  }
}
check(docs.length > 0, `${dir}: no manifests`);

for (const { file, obj } of docs) {
  const what = `${file}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
  let Model;
  try {
    Model = (await import(modulePath(obj.apiVersion)))[obj.kind];
  } catch (e) {
    Model = undefined;
  }
  if (!check(Model !== undefined, `${what}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`))
    continue;
  try {
    new Model(obj).validate();
    check(true, what);
  } catch (e) {
    check(false, `${what}: ${e.message.slice(0, 600)}`);
  }
}

// ---- the project's rules
const byKind = (k) => docs.filter((d) => d.obj.kind === k).map((d) => d.obj);
const [dep] = byKind("Deployment");
if (check(dep !== undefined, "a Deployment")) {
  const pod = dep.spec.template.spec;
  const labels = dep.spec.template.metadata.labels;
  const sel = dep.spec.selector.matchLabels;
  check(Object.entries(sel).every(([k, v]) => labels[k] === v), "Deployment selector matches its pods");
  check(pod.securityContext && pod.securityContext.runAsNonRoot === true, "pod runs as non-root");
  for (const c of pod.containers) {
    const n = `container ${c.name}`;
    check(c.readinessProbe && c.readinessProbe.httpGet, `${n}: readiness probe`);
    check(c.livenessProbe && c.livenessProbe.httpGet, `${n}: liveness probe`);
    check(c.readinessProbe && ["/readyz", "/v2/health/ready"].includes(c.readinessProbe.httpGet.path),
      `${n}: readiness on /readyz`);
    for (const r of ["requests", "limits"])
      for (const k of ["cpu", "memory"])
        check(c.resources && c.resources[r] && c.resources[r][k], `${n}: resources.${r}.${k}`);
    const sc = c.securityContext || {};
    check(sc.readOnlyRootFilesystem === true, `${n}: read-only root filesystem`);
    check(sc.allowPrivilegeEscalation === false, `${n}: no privilege escalation`);
    check(sc.capabilities && (sc.capabilities.drop || []).includes("ALL"), `${n}: drops all capabilities`);
    const pre = c.lifecycle && c.lifecycle.preStop;
    check(pre !== undefined, `${n}: preStop`);
    const sleep = pre && pre.exec ? Number(pre.exec.command[pre.exec.command.length - 1]) : 0;
    const envs = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
    const drain = Number(envs.DIGITD_DRAIN_SECONDS || 0);
    check(pod.terminationGracePeriodSeconds > sleep + drain + 10,
      `${n}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop ${sleep} + drain ${drain} + request timeout 10`);
    const mounts = (c.volumeMounts || []).map((m) => m.name);
    check((pod.volumes || []).every((v) => mounts.includes(v.name)), `${n}: every volume mounted`);
  }
  const [svc] = byKind("Service");
  check(svc && Object.entries(svc.spec.selector).every(([k, v]) => labels[k] === v),
    "Service selects the Deployment's pods");
  const [hpa] = byKind("HorizontalPodAutoscaler");
  check(hpa && hpa.spec.scaleTargetRef.kind === "Deployment" && hpa.spec.scaleTargetRef.name === dep.metadata.name,
    "HPA scales the Deployment");
  check(hpa && hpa.spec.metrics.some((m) => m.resource && m.resource.name === "cpu"), "HPA on CPU");
  const [pdb] = byKind("PodDisruptionBudget");
  check(pdb && Object.entries(pdb.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
    "PDB selects the Deployment's pods");
  check(pdb && hpa && (pdb.spec.maxUnavailable !== undefined ? pdb.spec.maxUnavailable < hpa.spec.minReplicas : pdb.spec.minAvailable < hpa.spec.minReplicas),
    "PDB leaves a pod serving at the HPA's minimum");
  const claims = (pod.volumes || []).filter((v) => v.persistentVolumeClaim).map((v) => v.persistentVolumeClaim.claimName);
  const pvcs = byKind("PersistentVolumeClaim").map((p) => p.metadata.name);
  check(claims.every((c) => pvcs.includes(c)), "every claimed volume is defined");
}

console.log(`${passed} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
