//! Reconnect delays: 1, 2, 4, 8, 16, then 30 s, each scaled by `0.5 + random * 0.5` so that
//! many tabs dropped by one server restart do not all come back in the same instant.

const SCHEDULE_MS: [u32; 6] = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000];

/// Delay before reconnect attempt `attempt` (1-based). `random` is a sample from `[0, 1)`;
/// values outside are clamped so a bad source can never produce a zero or huge delay.
pub fn reconnect_delay_ms(attempt: u32, random: f64) -> u32 {
    let index = (attempt.max(1) - 1).min(SCHEDULE_MS.len() as u32 - 1) as usize;
    let base = f64::from(SCHEDULE_MS[index]);
    let random = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.0
    };
    (base * (0.5 + random * 0.5)).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_at_thirty_seconds() {
        let full: Vec<u32> = (1..=8).map(|a| reconnect_delay_ms(a, 1.0)).collect();
        assert_eq!(
            full,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        for attempt in 1..=10 {
            let low = reconnect_delay_ms(attempt, 0.0);
            let high = reconnect_delay_ms(attempt, 0.999);
            assert!(low * 2 >= reconnect_delay_ms(attempt, 1.0) - 1);
            assert!(low <= high);
        }
        assert_eq!(reconnect_delay_ms(1, 0.5), 750);
    }

    #[test]
    fn bad_inputs_are_clamped() {
        assert_eq!(reconnect_delay_ms(0, 1.0), 1_000);
        assert_eq!(reconnect_delay_ms(u32::MAX, 1.0), 30_000);
        assert_eq!(reconnect_delay_ms(1, f64::NAN), 500);
        assert_eq!(reconnect_delay_ms(1, -3.0), 500);
        assert_eq!(reconnect_delay_ms(1, 7.0), 1_000);
    }
}
