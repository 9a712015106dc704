//! The k8s module against the behaviours of a real cluster that the test
//! server now has (issue 17): HPAs that undo a scale, and the primitives
//! the runbooks needed kubectl for.

use crate::support::*;

#[test]
fn scale_under_an_hpa_verifies_the_count_and_refuses_what_the_hpa_would_undo() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    // The seed's HPA keeps api within 2..10: 1 would be undone.
    env.script(r#"k8s.scale("api", 1)"#)
        .kube(&k)
        .run()
        .assert_code(3)
        .assert_stderr_contains("HorizontalPodAutoscaler api keeps deployment api between 2 and 10")
        .assert_stderr_contains("override_hpa");
    assert_eq!(k.replicas("api"), 3, "a refused scale changes nothing");
    // Forced through, the wait sees the HPA put it back and says so.
    env.script(r#"k8s.scale("api", 1, #{override_hpa: true, wait: true, timeout: "20s"})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("was scaled to 1 but now wants 2 replicas")
        .assert_stderr_contains("the HorizontalPodAutoscaler api (min 2, max 10) changed it");
    // 0 switches the HPA off: the count holds, and the result says why.
    env.script(r#"let r = k8s.scale("api", 0, #{wait: true, timeout: "20s"}); print(`to=${r.to} ready=${r.ready} ${r.warning}`);"#)
        .kube(&k)
        .run()
        .assert_code(0)
        .assert_stdout_contains("to=0 ready=0 the HorizontalPodAutoscaler api (min 2, max 10) stops acting");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(k.replicas("api"), 0);
    assert!(k.pods("api").is_empty());
}
