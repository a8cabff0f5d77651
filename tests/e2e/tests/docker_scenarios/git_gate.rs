//! The agent's git through git-gate.

use bottle_e2e::*;

use super::*;

/// The agent's git goes to git-gate through the insteadOf rewrite; the policy decides.
pub fn git_through_gate(c: &mut Checks, home: &Home) {
    let tmp = TempDir::new("bottle-e2e-git");
    let bare = seeded_upstream(tmp.path(), "README", "seed\n");
    let main_before = host_git(&bare, &["rev-parse", "refs/heads/main"])
        .stdout
        .trim()
        .to_string();
    let url = format!("file://{}", bare.display());
    let m = format!(
        "name: e2egit\nimage: bottle-agent-test:latest\ngit:\n  - name: demo\n    upstream: {url}\n    rules:\n      - {{ref: \"refs/heads/agent/**\", allow: [create, update]}}\n    protected: [\"refs/heads/main\"]\n"
    );
    let mpath = tmp.path().join("git.yaml");
    std::fs::write(&mpath, m).unwrap();
    let r = home.bottle(&["start", mpath.to_str().unwrap(), "--detach"], START);
    c.check("bottle with git-gate starts", r.code == 0, || r.all());
    if r.code != 0 {
        return;
    }
    let Some(slug) = home.slugs().into_iter().find(|s| s.starts_with("e2egit-")) else {
        c.check("git bottle state dir", false, String::new);
        return;
    };
    let project = format!("bottle-{slug}");
    let agent = agent_container(&project);
    let sh = |script: &str| agent_sh(&agent, script, Duration::from_secs(120));
    let gc = "git -c user.name=agent -c user.email=agent@example.invalid";
    let r = sh(&format!(
        "cd /tmp && git clone -q {url} work && git -C work log --oneline | wc -l"
    ));
    c.check(
        "agent clones the upstream URL through git-gate (insteadOf)",
        r.code == 0 && r.stdout.trim() == "1",
        || r.all(),
    );
    let r = sh(&format!(
        "cd /tmp/work && git checkout -q -b agent/e2e && echo hello > f && git add f && {gc} commit -q -m work && git push -q origin agent/e2e 2>&1; echo rc=$?; git rev-parse HEAD"
    ));
    let head = r.stdout.lines().last().unwrap_or("").trim().to_string();
    let landed = host_git(&bare, &["rev-parse", "refs/heads/agent/e2e"])
        .stdout
        .trim()
        .to_string();
    c.check(
        "allowed push lands upstream",
        r.stdout.contains("rc=0") && !head.is_empty() && landed == head,
        || format!("{} upstream={landed}", r.all()),
    );
    let r = sh("cd /tmp/work && git push origin agent/e2e:main 2>&1; echo rc=$?");
    let main_after = host_git(&bare, &["rev-parse", "refs/heads/main"])
        .stdout
        .trim()
        .to_string();
    c.check(
        "push to protected main refused with a reason",
        !r.stdout.contains("rc=0") && r.stdout.contains("main") && main_after == main_before,
        || r.all(),
    );
    let key = format!(
        "AKIA{}",
        (0..16)
            .map(|i| (b'A' + ((rand::random::<u8>() as usize + i) % 26) as u8) as char)
            .collect::<String>()
    );
    let r = sh(&format!(
        "cd /tmp/work && printf 'aws_access_key_id = {key}\\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY9\\n' > creds && git add creds && {gc} commit -q -m creds && git push origin agent/e2e 2>&1; echo rc=$?"
    ));
    let after = host_git(&bare, &["rev-parse", "refs/heads/agent/e2e"])
        .stdout
        .trim()
        .to_string();
    c.check(
        "push with a secret refused, upstream unchanged",
        !r.stdout.contains("rc=0") && after == landed,
        || r.all(),
    );
    let r = home.bottle(&["stop", &slug], START);
    c.check(
        "git bottle stops cleanly",
        r.code == 0 && project_objects(&project).is_empty(),
        || r.all(),
    );
}
