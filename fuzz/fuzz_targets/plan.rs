//! `IMPLEMENTATION_PLAN.md`: `parse_plan` on lossily decoded bytes, then `Plan::progress`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loopwatch::contract::ralph::plan::{parse_plan, PlanStatus};
use loopwatch::model::PhaseStatus;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let plan = parse_plan(&text);

    for phase in &plan.phases {
        for (index, task) in phase.tasks.iter().enumerate() {
            // A task can only nest under the tasks written before it.
            assert!(task.depth as usize <= index, "depth {} at index {index}", task.depth);
            if let Some(id) = &task.id {
                assert!(id.starts_with(|c: char| c.is_ascii_digit()), "id {id:?}");
                assert!(!id.contains(".."), "id {id:?}");
            }
        }
    }
    assert_eq!(plan.is_complete(), plan.status == Some(PlanStatus::Complete));

    let progress = plan.progress();
    assert!(
        progress.tasks_done <= progress.tasks_total,
        "{} done of {}",
        progress.tasks_done,
        progress.tasks_total
    );
    assert_eq!(
        progress.tasks_total,
        progress.phases.iter().map(|phase| phase.total).sum::<u32>()
    );
    assert_eq!(
        progress.tasks_done,
        progress.phases.iter().map(|phase| phase.done).sum::<u32>()
    );
    for phase in &progress.phases {
        assert!(phase.done <= phase.total, "phase {:?}: {} of {}", phase.name, phase.done, phase.total);
        let expected = if phase.total > 0 && phase.done == phase.total {
            PhaseStatus::Complete
        } else if phase.done > 0 {
            PhaseStatus::InProgress
        } else {
            PhaseStatus::NotStarted
        };
        assert_eq!(phase.status, expected, "phase {:?}", phase.name);
    }
    assert!(progress.percent() <= 100, "percent {}", progress.percent());
});
