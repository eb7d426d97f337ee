#!/usr/bin/env python3
"""Integration test: starts cubelet-test-apiserver and checks it over HTTPS against the
behaviour captured from a real kube-apiserver (shared/k8s-samples)."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apiserver_harness import TestApiServer, parse_chunked  # noqa: E402

FAILURES = []
PASSED = [0]


def check(cond, what, detail=""):
    if cond:
        PASSED[0] += 1
    else:
        FAILURES.append("%s %s" % (what, detail))
        print("FAIL:", what, detail, file=sys.stderr)


def eq(got, want, what):
    check(got == want, what, "\n  got:  %r\n  want: %r" % (got, want))


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox:1.36",
                                                  "ports": [{"name": "http",
                                                             "containerPort": 8080}]}]}}


def main(binary):
    with TestApiServer(binary, nodes=["n1", "n2"],
                       extra_args=["--bookmark-interval-ms", "300"]) as s:
        admin = s.admin_token()
        n1 = s.node_token("n1")

        # --- authentication
        st, body = s.request("GET", "/version")
        eq(st, 200, "/version is public")
        check(body.startswith("{\n  \"major\": \"1\""), "/version is pretty-printed", body)
        st, body = s.request("GET", "/api/v1/namespaces")
        eq(st, 403, "no credentials is 403")
        eq(body, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
           '"namespaces is forbidden: User \\"system:anonymous\\" cannot list resource '
           '\\"namespaces\\" in API group \\"\\" at the cluster scope","reason":"Forbidden",'
           '"details":{"kind":"namespaces"},"code":403}', "anonymous 403 body (sample 05)")
        st, body = s.request("GET", "/api/v1/namespaces", token="not-a-valid-token-0123456789")
        eq(st, 401, "bad token is 401")
        eq(body, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
           '"message":"Unauthorized","reason":"Unauthorized","code":401}', "401 body (sample 06)")
        st, ssr = s.json("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                         token="bad-token", cert="node-n1")
        eq(st, 201, "cert + bad token authenticates as the cert (sample 08)")
        eq(ssr["status"]["userInfo"]["username"], "system:node:n1", "cert user name")
        eq(ssr["status"]["userInfo"]["groups"], ["system:nodes", "system:authenticated"],
           "cert groups")
        check(ssr["status"]["userInfo"]["extra"]["authentication.kubernetes.io/credential-id"][0]
              .startswith("X509SHA256="), "credential id")
        st, _ = s.request("GET", "/api", token=n1)
        eq(st, 200, "discovery for authenticated")
        st, _ = s.request("GET", "/api")
        eq(st, 403, "discovery refused to anonymous")
        st, body = s.request("GET", "/healthz")
        eq((st, body), (200, "ok"), "/healthz")

        # --- node registration and authorizer
        node = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                           "lastTransitionTime": "2026-01-01T00:00:00Z",
                                           "reason": "KubeletReady",
                                           "message": "kubelet is posting ready status"}]}}
        st, created = s.json("POST", "/api/v1/nodes", node, cert="node-n1")
        eq(st, 201, "node creates itself")
        eq(created["spec"]["taints"], [{"key": "node.kubernetes.io/not-ready",
                                        "effect": "NoSchedule"}], "not-ready taint on create")
        st, other = s.json("POST", "/api/v1/nodes", dict(node, metadata={"name": "n2"}), token=n1)
        eq(st, 403, "node cannot create another node")
        st, body = s.json("GET", "/api/v1/nodes/n2", token=n1)
        eq(st, 404, "other missing node is 404")
        st, body = s.json("PATCH", "/api/v1/nodes/n2/status", {"status": {}}, token=n1,
                          content_type="application/strategic-merge-patch+json")
        eq(st, 404, "status patch of a missing other node is 404 (sample 14)")
        st, body = s.json("GET", "/api/v1/pods", token=n1)
        eq(st, 403, "node list pods without selector")
        st, _ = s.json("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2", token=n1)
        eq(st, 403, "node list of other node's pods")
        for _ in range(100):
            st, n = s.json("GET", "/api/v1/nodes/n1", token=n1)
            if n["spec"].get("podCIDR") and "taints" not in n["spec"]:
                break
            time.sleep(0.1)
        eq(n["spec"].get("podCIDR"), "10.244.0.0/24", "controller allocated podCIDR")
        check("taints" not in n["spec"], "controller removed not-ready taint", n["spec"])

        # --- list + raw watch framing
        st, lst = s.json("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", token=n1)
        eq((st, lst["items"], lst["kind"]), (200, [], "PodList"), "empty list has items []")
        rv = lst["metadata"]["resourceVersion"]
        result = {}

        def watch():
            result["raw"] = s.raw_watch(
                "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&watch=true"
                "&allowWatchBookmarks=true&resourceVersion=" + rv + "&timeoutSeconds=3", n1, 3)
        t = threading.Thread(target=watch)
        t.start()
        time.sleep(0.5)
        st, pod = s.json("POST", "/api/v1/namespaces/default/pods", POD, token=admin)
        eq(st, 201, "admin creates pod")
        st, again = s.json("POST", "/api/v1/namespaces/default/pods", POD, token=admin)
        eq(st, 409, "duplicate pod")
        eq(again["reason"], "AlreadyExists", "409 reason")
        eq(again["message"], 'pods "web" already exists', "409 message")
        status_patch = {"metadata": {"uid": pod["metadata"]["uid"]},
                        "status": {"phase": "Running", "podIP": "10.244.0.5",
                                   "podIPs": [{"ip": "10.244.0.5"}],
                                   "conditions": [{"type": "Ready", "status": "True"}]}}
        st, patched = s.json("PATCH", "/api/v1/namespaces/default/pods/web/status", status_patch,
                             token=n1, content_type="application/strategic-merge-patch+json")
        eq(st, 200, "node patches pod status")
        eq(patched["status"]["phase"], "Running", "patched phase")
        t.join()
        status_line, headers, chunks = parse_chunked(result["raw"])
        eq(status_line, "HTTP/1.1 200 OK", "watch status line")
        eq(headers.get("transfer-encoding"), "chunked", "watch is chunked")
        check("content-length" not in headers, "watch has no content-length")
        events = []
        for c in chunks:
            check(c.endswith(b"\n") and c.count(b"\n") == 1, "one JSON object + newline per chunk",
                  c[:80])
            events.append(json.loads(c))
        types = [e["type"] for e in events]
        eq([t for t in types if t != "BOOKMARK"], ["ADDED", "MODIFIED"], "watch events")
        eq(events[0]["object"]["kind"], "Pod", "watch objects carry kind")
        check("BOOKMARK" in types, "bookmark sent", types)
        bm = [e for e in events if e["type"] == "BOOKMARK"][0]["object"]
        eq(sorted(bm.keys()), ["apiVersion", "kind", "metadata", "spec", "status"], "bookmark keys")
        eq(bm["spec"], {"containers": None}, "bookmark spec")

        # --- EndpointSlice controller
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
        st, svc_obj = s.json("POST", "/api/v1/namespaces/default/services", svc, token=admin)
        eq(st, 201, "create service")
        slices = None
        for _ in range(50):
            st, sl = s.json("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
                            "?labelSelector=kubernetes.io/service-name%3Dweb", token=n1)
            if sl["items"] and sl["items"][0]["endpoints"]:
                slices = sl["items"]
                break
            time.sleep(0.1)
        check(slices is not None, "endpointslice populated")
        if slices:
            ep = slices[0]["endpoints"][0]
            eq(ep["addresses"], ["10.244.0.5"], "slice address")
            eq(ep["conditions"], {"ready": True, "serving": True, "terminating": False},
               "slice conditions")
            eq(slices[0]["ports"], [{"name": "http", "protocol": "TCP", "port": 8080}],
               "named targetPort resolved")

        # --- 409 conflict on stale RV (sample 23)
        lease = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                 "metadata": {"name": "n1", "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                          "renewTime": "2026-11-24T07:58:52.416453Z"}}
        st, l1 = s.json("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                        lease, token=n1)
        eq(st, 201, "lease create")
        eq(l1["spec"]["renewTime"], "2026-11-24T07:58:52.416453Z", "MicroTime kept")
        l1["spec"]["renewTime"] = "2026-11-24T07:59:08.001804Z"
        st, l2 = s.json("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                        l1, token=n1)
        eq(st, 200, "lease put")
        check(int(l2["metadata"]["resourceVersion"]) > int(l1["metadata"]["resourceVersion"]),
              "rv increases")
        st, body = s.request("PUT",
                             "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                             json.dumps(l1), token=n1)
        eq(st, 409, "stale lease put")
        eq(body, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
           '"Operation cannot be fulfilled on leases.coordination.k8s.io \\"n1\\": the object has '
           'been modified; please apply your changes to the latest version and try again",'
           '"reason":"Conflict","details":{"name":"n1","group":"coordination.k8s.io",'
           '"kind":"leases"},"code":409}', "conflict body (sample 23)")
        st, body = s.request("PATCH", "/api/v1/nodes/n1/status", '{"status":{"conditions":[{',
                             token=n1, content_type="application/strategic-merge-patch+json")
        eq(st, 400, "malformed patch")
        check('"message":"unexpected end of JSON input"' in body, "malformed patch message", body)

        # --- token request bound to a pod
        tr = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
              "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"],
                       "expirationSeconds": 3607,
                       "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web",
                                          "uid": pod["metadata"]["uid"]}}}
        st, tok = s.json("POST", "/api/v1/namespaces/default/serviceaccounts/default/token", tr,
                         token=n1)
        eq(st, 201, "token request")
        check(tok["status"]["token"].count(".") == 2, "token is a JWT")
        tr["spec"]["boundObjectRef"]["uid"] = "00000000-0000-0000-0000-000000000000"
        st, bad = s.json("POST", "/api/v1/namespaces/default/serviceaccounts/default/token", tr,
                         token=n1)
        eq(st, 403, "token for wrong pod uid (sample 37b)")

        # --- 410 Gone after compaction
        st, _ = s.request("POST", "/__test/compact", "", token=admin)
        eq(st, 200, "compact")
        raw = s.raw_watch("/api/v1/pods?watch=true&resourceVersion=" + rv, admin, 2)
        _, _, chunks = parse_chunked(raw)
        eq(len(chunks), 1, "too-old watch has one event")
        ev = json.loads(chunks[0])
        eq(ev["type"], "ERROR", "too-old watch error event")
        eq(ev["object"]["code"], 410, "410 code")
        eq(ev["object"]["reason"], "Expired", "Expired reason")
        check(ev["object"]["message"].startswith("too old resource version: " + rv),
              "too old message", ev["object"]["message"])
        st, body = s.json("GET", "/api/v1/pods?resourceVersion=" + rv + "&resourceVersionMatch=Exact",
                          token=admin)
        eq(st, 410, "list Exact with compacted RV")
        eq(body["message"], "The resourceVersion for the provided list is too old.", "410 list msg")

        # --- graceful deletion
        st, d1 = s.json("DELETE", "/api/v1/namespaces/default/pods/web", token=admin)
        eq(st, 200, "graceful delete")
        eq(d1["metadata"].get("deletionGracePeriodSeconds"), 30, "grace 30")
        st, still = s.json("GET", "/api/v1/namespaces/default/pods/web", token=n1)
        eq(st, 200, "pod still there while terminating")
        st, bad = s.json("DELETE", "/api/v1/namespaces/default/pods/web",
                         {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                          "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}},
                         token=n1)
        eq(st, 409, "wrong uid precondition (sample 73)")
        st, fin = s.json("DELETE", "/api/v1/namespaces/default/pods/web",
                         {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                          "preconditions": {"uid": pod["metadata"]["uid"]}}, token=n1)
        eq(st, 200, "final delete")
        st, body = s.json("GET", "/api/v1/namespaces/default/pods/web", token=n1)
        eq(st, 403, "deleted pod is 403 for the node (sample 43)")
        st, body = s.json("DELETE", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                          token=admin)
        eq((st, body["status"], body["details"]["kind"]), (200, "Success", "leases"),
           "lease delete returns Status (sample 93)")
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
