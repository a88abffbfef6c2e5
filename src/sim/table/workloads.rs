//! Workload printers: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ControllerRevision.
//! Replica counts the server defaults (`spec.replicas` to 1) read as defaulted.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::cells::{self, age_of, int, list, name, text};
use super::{Column, Printer, Row, age, docs};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let (columns, row): (Vec<Column>, super::RowFn) = match (group, kind) {
        ("apps", "Deployment") => (deployment_columns(), deployment),
        ("apps", "ReplicaSet") => (replica_set_columns(), replica_set),
        ("apps", "StatefulSet") => (stateful_set_columns(), stateful_set),
        ("apps", "DaemonSet") => (daemon_set_columns(), daemon_set),
        ("apps", "ControllerRevision") => (controller_revision_columns(), controller_revision),
        ("batch", "Job") => (job_columns(), job),
        ("batch", "CronJob") => (cron_job_columns(), cron_job),
        _ => return None,
    };
    Some(Printer::builtin(columns, row))
}

/// CONTAINERS and IMAGES, the wide columns of every workload.
fn template_columns() -> [Column; 2] {
    [Column::new("Containers", "string", docs::CONTAINERS).wide(), Column::new("Images", "string", docs::IMAGES).wide()]
}

/// `spec.replicas`, which the server defaults to 1.
fn desired(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// The CONTAINERS and IMAGES cells of a pod template.
fn template_cells(template: &Value) -> [Value; 2] {
    let (names, images) = cells::containers(&template["spec"]);
    [json!(names), json!(images)]
}

fn deployment_columns() -> Vec<Column> {
    let mut columns = vec![
        Column::name(),
        Column::new("Ready", "string", "Number of the pod with ready state"),
        Column::new("Up-to-date", "string", docs::DEPLOYMENT_UPDATED),
        Column::new("Available", "string", docs::DEPLOYMENT_AVAILABLE),
        Column::age(),
    ];
    columns.extend(template_columns());
    columns.push(Column::new("Selector", "string", docs::DEPLOYMENT_SELECTOR).wide());
    columns
}

/// READY is `ready/desired`; the selector is written bare (an empty one is `""`).
fn deployment(d: &Value, now: DateTime<Utc>) -> Row {
    let status = &d["status"];
    let selector = cells::selector(&d["spec"]["selector"]).unwrap_or_else(|| "<invalid>".into());
    let mut cells = vec![
        name(d),
        json!(format!("{}/{}", int(&status["readyReplicas"]), desired(d))),
        json!(int(&status["updatedReplicas"])),
        json!(int(&status["availableReplicas"])),
        age_of(d, now),
    ];
    cells.extend(template_cells(&d["spec"]["template"]));
    cells.push(json!(selector));
    cells.into()
}

fn replica_set_columns() -> Vec<Column> {
    let mut columns = vec![
        Column::name(),
        Column::new("Desired", "integer", docs::RS_DESIRED),
        Column::new("Current", "integer", docs::RS_CURRENT),
        Column::new("Ready", "integer", docs::RS_READY),
        Column::age(),
    ];
    columns.extend(template_columns());
    columns.push(Column::new("Selector", "string", docs::RS_SELECTOR).wide());
    columns
}

fn replica_set(rs: &Value, now: DateTime<Utc>) -> Row {
    let status = &rs["status"];
    let mut cells = vec![
        name(rs),
        json!(desired(rs)),
        json!(int(&status["replicas"])),
        json!(int(&status["readyReplicas"])),
        age_of(rs, now),
    ];
    cells.extend(template_cells(&rs["spec"]["template"]));
    cells.push(json!(cells::format_selector(&rs["spec"]["selector"])));
    cells.into()
}

fn stateful_set_columns() -> Vec<Column> {
    let mut columns =
        vec![Column::name(), Column::new("Ready", "string", "Number of the pod with ready state"), Column::age()];
    columns.extend(template_columns());
    columns
}

fn stateful_set(sts: &Value, now: DateTime<Utc>) -> Row {
    let ready = format!("{}/{}", int(&sts["status"]["readyReplicas"]), desired(sts));
    let mut cells = vec![name(sts), json!(ready), age_of(sts, now)];
    cells.extend(template_cells(&sts["spec"]["template"]));
    cells.into()
}

fn daemon_set_columns() -> Vec<Column> {
    let mut columns = vec![
        Column::name(),
        Column::new("Desired", "integer", docs::DS_DESIRED),
        Column::new("Current", "integer", docs::DS_CURRENT),
        Column::new("Ready", "integer", docs::DS_READY),
        Column::new("Up-to-date", "integer", docs::DS_UPDATED),
        Column::new("Available", "integer", docs::DS_AVAILABLE),
        Column::new("Node Selector", "string", docs::NODE_SELECTOR),
        Column::age(),
    ];
    columns.extend(template_columns());
    columns.push(Column::new("Selector", "string", docs::DS_SELECTOR).wide());
    columns
}

fn daemon_set(ds: &Value, now: DateTime<Utc>) -> Row {
    let status = &ds["status"];
    let counts = [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ];
    let mut cells = vec![name(ds)];
    cells.extend(counts.iter().map(|k| json!(int(&status[*k]))));
    cells.push(json!(cells::labels(&ds["spec"]["template"]["spec"]["nodeSelector"])));
    cells.push(age_of(ds, now));
    cells.extend(template_cells(&ds["spec"]["template"]));
    cells.push(json!(cells::format_selector(&ds["spec"]["selector"])));
    cells.into()
}

fn controller_revision_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Controller", "string", "Controller of the object"),
        Column::new("Revision", "string", docs::REVISION),
        Column::age(),
    ]
}

/// CONTROLLER is the controlling owner as `statefulset.apps/web`, or `<none>`.
fn controller_revision(cr: &Value, now: DateTime<Utc>) -> Row {
    let owner = list(&cr["metadata"]["ownerReferences"]).iter().find(|o| o["controller"] == true);
    let controller = owner.map_or_else(
        || "<none>".to_string(),
        |o| {
            let group = text(&o["apiVersion"]).rsplit_once('/').map_or("", |(g, _)| g);
            let kind = text(&o["kind"]);
            let group_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
            format!("{}/{}", group_kind.to_lowercase(), text(&o["name"]))
        },
    );
    vec![name(cr), json!(controller), json!(int(&cr["revision"])), age_of(cr, now)].into()
}

fn job_columns() -> Vec<Column> {
    let mut columns = vec![
        Column::name(),
        Column::new("Status", "string", "Status of the job."),
        Column::new("Completions", "string", docs::JOB_SUCCEEDED),
        Column::new("Duration", "string", "Time required to complete the job."),
        Column::age(),
    ];
    columns.extend(template_columns());
    columns.push(Column::new("Selector", "string", docs::JOB_SELECTOR).wide());
    columns
}

fn job(j: &Value, now: DateTime<Utc>) -> Row {
    let mut cells = vec![name(j), json!(job_status(j)), json!(completions(j)), json!(duration(j, now)), age_of(j, now)];
    cells.extend(template_cells(&j["spec"]["template"]));
    cells.push(json!(cells::format_selector(&j["spec"]["selector"])));
    cells.into()
}

/// `1/3`, or `1/1 of 4` for a work queue with parallelism.
fn completions(j: &Value) -> String {
    let succeeded = int(&j["status"]["succeeded"]);
    if let Some(want) = j["spec"]["completions"].as_i64() {
        return format!("{succeeded}/{want}");
    }
    match int(&j["spec"]["parallelism"]) {
        p if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    }
}

/// How long the job ran (or has been running); empty before it starts.
fn duration(j: &Value, now: DateTime<Utc>) -> String {
    let Some(start) = age::time(&j["status"]["startTime"]) else { return String::new() };
    let end = age::time(&j["status"]["completionTime"]).unwrap_or(now);
    age::human(end - start)
}

fn job_status(j: &Value) -> &'static str {
    // Like the printer, only the first condition of a type counts.
    let holds = |kind: &str| cells::condition(&j["status"]["conditions"], kind).is_some_and(|c| c["status"] == "True");
    if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if !j["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if holds("Suspended") {
        "Suspended"
    } else if holds("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn cron_job_columns() -> Vec<Column> {
    let mut columns = vec![
        Column::name(),
        Column::new("Schedule", "string", docs::CRON_SCHEDULE),
        Column::new("Timezone", "string", docs::CRON_TIME_ZONE),
        Column::new("Suspend", "boolean", docs::CRON_SUSPEND),
        Column::new("Active", "integer", docs::CRON_ACTIVE),
        Column::new("Last Schedule", "string", docs::CRON_LAST_SCHEDULE),
        Column::age(),
    ];
    columns.extend(template_columns());
    columns.push(Column::new("Selector", "string", docs::JOB_SELECTOR).wide());
    columns
}

fn cron_job(cj: &Value, now: DateTime<Utc>) -> Row {
    let spec = &cj["spec"];
    let last = &cj["status"]["lastScheduleTime"];
    let last = if last.is_null() { "<none>".into() } else { age::since(last, now) };
    // SUSPEND is written "True"/"False" (a string), and the server defaults it to false.
    let suspend = if spec["suspend"] == true { "True" } else { "False" };
    let mut cells = vec![
        name(cj),
        json!(text(&spec["schedule"])),
        json!(cells::or_none(text(&spec["timeZone"]))),
        json!(suspend),
        json!(cells::len(&cj["status"]["active"])),
        json!(last),
        age_of(cj, now),
    ];
    cells.extend(template_cells(&spec["jobTemplate"]["spec"]["template"]));
    cells.push(json!(cells::format_selector(&spec["jobTemplate"]["spec"]["selector"])));
    cells.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "nginx:1.27"}, {"name": "exporter", "image": "nginx-exporter:1.1"}]}})
    }

    #[test]
    fn a_deployment_shows_ready_of_desired() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2024-04-29T09:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            deployment(&d, now()).cells,
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d3h"),
                json!("web,exporter"),
                json!("nginx:1.27,nginx-exporter:1.1"),
                json!("app=web")
            ]
        );
        let names: Vec<_> = deployment_columns().into_iter().map(|c| (c.name, c.priority)).collect();
        assert_eq!(
            names[..5],
            [
                ("Name".into(), 0),
                ("Ready".into(), 0),
                ("Up-to-date".into(), 0),
                ("Available".into(), 0),
                ("Age".into(), 0)
            ]
        );
        assert!(names[5..].iter().all(|(_, p)| *p == 1), "containers, images and selector are -o wide only");
    }

    #[test]
    fn a_fresh_deployment_without_status_is_zero_of_desired() {
        let d = json!({"metadata": {"name": "api"}, "spec": {"template": template()}});
        assert_eq!(deployment(&d, now()).cells[1..5], [json!("0/1"), json!(0), json!(0), json!("<unknown>")]);
    }

    #[test]
    fn stateful_and_daemon_sets_count_their_pods() {
        let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": template()}, "status": {"readyReplicas": 3}});
        assert_eq!(stateful_set(&sts, now()).cells[1], "3/3");
        let ds = json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": []}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            daemon_set(&ds, now()).cells[..8],
            [
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("<unknown>")
            ]
        );
    }

    #[test]
    fn jobs_show_status_completions_and_duration() {
        let j = json!({"metadata": {"name": "backup-28573"}, "spec": {"completions": 1, "template": template()},
            "status": {"succeeded": 1, "startTime": "2024-05-01T11:00:00Z", "completionTime": "2024-05-01T11:00:42Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(job(&j, now()).cells[1..4], [json!("Complete"), json!("1/1"), json!("42s")]);
        let queue = json!({"metadata": {"name": "q"}, "spec": {"parallelism": 4}, "status": {"startTime": "2024-05-01T11:55:00Z"}});
        assert_eq!(job(&queue, now()).cells[1..4], [json!("Running"), json!("0/1 of 4"), json!("5m")]);
    }

    #[test]
    fn cron_jobs_show_schedule_and_last_run() {
        let cj = json!({"metadata": {"name": "nightly"}, "spec": {"schedule": "0 2 * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": template()}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2024-05-01T02:00:00Z"}});
        assert_eq!(
            cron_job(&cj, now()).cells[1..6],
            [json!("0 2 * * *"), json!("<none>"), json!("False"), json!(1), json!("10h")]
        );
    }

    #[test]
    fn controller_revisions_name_their_controller() {
        let cr = json!({"metadata": {"name": "db-5d8c", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]}, "revision": 2});
        assert_eq!(controller_revision(&cr, now()).cells[1..3], [json!("statefulset.apps/db"), json!(2)]);
    }
}
