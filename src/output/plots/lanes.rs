//! Turning timeline spans into at most one coloured run per pixel column per lane.
//!
//! A 10-minute run has far more spans than a chart has pixels, so spans are binned:
//! each pixel column of a lane takes the category that covers most of its time
//! (ties go to the lower category index), and equal neighbouring columns merge into
//! one rectangle. The work is O(spans + pixels), and what is drawn is bounded by
//! lanes x width whatever the input size.

use plotters::style::RGBColor;

/// What a span was: GPU state and, for busy states, what ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Computing attention.
    Attention,
    /// Computing a dense MLP.
    Mlp,
    /// Computing MoE experts.
    Experts,
    /// Computing the LM head.
    LmHead,
    /// Computing anything else (framework overhead, unknown operators).
    ComputeOther,
    /// Exposed TP all-reduce.
    TpComm,
    /// Exposed PP send/recv.
    PpComm,
    /// Exposed EP all-to-all.
    EpComm,
    /// Other exposed communication.
    CommOther,
    /// Waiting for TP peers.
    TpWait,
    /// Waiting for the previous/next pipeline stage.
    PpWait,
    /// Waiting for EP peers.
    EpWait,
    /// Waiting for anything else.
    WaitOther,
    /// Idle.
    Idle,
}

/// Every category, in legend order.
pub const ALL: [Category; 14] = [
    Category::Attention,
    Category::Mlp,
    Category::Experts,
    Category::LmHead,
    Category::ComputeOther,
    Category::TpComm,
    Category::PpComm,
    Category::EpComm,
    Category::CommOther,
    Category::TpWait,
    Category::PpWait,
    Category::EpWait,
    Category::WaitOther,
    Category::Idle,
];

impl Category {
    /// The category of a `timeline.csv` row's `state` and `what`.
    pub fn of(state: &str, what: &str) -> Category {
        use Category::*;
        let kind = |tp, pp, ep, other| match what {
            "tp_allreduce" => tp,
            "pp_sendrecv" => pp,
            "ep_alltoall" => ep,
            _ => other,
        };
        match state {
            "compute" => match what {
                "attention" => Attention,
                "mlp" => Mlp,
                "experts" => Experts,
                "lm_head" => LmHead,
                _ => ComputeOther,
            },
            "communicate" => kind(TpComm, PpComm, EpComm, CommOther),
            "wait" => kind(TpWait, PpWait, EpWait, WaitOther),
            _ => Idle,
        }
    }

    /// Index into [`ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Legend text.
    pub fn label(self) -> &'static str {
        use Category::*;
        match self {
            Attention => "compute: attention",
            Mlp => "compute: MLP",
            Experts => "compute: MoE experts",
            LmHead => "compute: LM head",
            ComputeOther => "compute: other/overhead",
            TpComm => "communicate: TP all-reduce",
            PpComm => "communicate: PP send/recv",
            EpComm => "communicate: EP all-to-all",
            CommOther => "communicate: other",
            TpWait => "wait for peers: TP",
            PpWait => "wait for peers: PP stage",
            EpWait => "wait for peers: EP",
            WaitOther => "wait for peers: other",
            Idle => "idle",
        }
    }

    /// Fill colour: blues/greens for compute, saturated warm colours for
    /// communication, pale versions of them for waiting, light grey for idle.
    pub fn color(self) -> RGBColor {
        use Category::*;
        match self {
            Attention => RGBColor(0x2F, 0x5F, 0xA8),
            Mlp => RGBColor(0x3E, 0x9E, 0x55),
            Experts => RGBColor(0x1F, 0x8A, 0x80),
            LmHead => RGBColor(0x76, 0x5C, 0xB0),
            ComputeOther => RGBColor(0x7F, 0xA8, 0xD8),
            TpComm => RGBColor(0xE0, 0x6C, 0x1A),
            PpComm => RGBColor(0xC8, 0x2A, 0x30),
            EpComm => RGBColor(0xB0, 0x30, 0x90),
            CommOther => RGBColor(0x8B, 0x5A, 0x2B),
            TpWait => RGBColor(0xF7, 0xC0, 0x8A),
            PpWait => RGBColor(0xF0, 0xA0, 0xA3),
            EpWait => RGBColor(0xE4, 0xA8, 0xD6),
            WaitOther => RGBColor(0xEE, 0xDC, 0x5B),
            Idle => RGBColor(0xE4, 0xE4, 0xE4),
        }
    }
}

/// A run of equal pixel columns in one lane: columns `[col0, col1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    /// Lane index.
    pub lane: usize,
    /// First column.
    pub col0: usize,
    /// One past the last column.
    pub col1: usize,
    /// What covers these columns most.
    pub cat: Category,
}

/// Accumulates span coverage per lane and pixel column over a time window.
pub struct Binner {
    t0: f64,
    px_per_s: f64,
    width: usize,
    cover: Vec<[f32; ALL.len()]>,
    present: [bool; ALL.len()],
}

impl Binner {
    /// A binner for `lanes` lanes of `width` columns over `[t0, t1]` seconds.
    pub fn new(lanes: usize, width: usize, t0: f64, t1: f64) -> Binner {
        let width = width.max(1);
        let span = t1 - t0;
        let px_per_s = if span > 0.0 { width as f64 / span } else { 0.0 };
        Binner { t0, px_per_s, width, cover: vec![[0.0; ALL.len()]; lanes * width], present: [false; ALL.len()] }
    }

    /// Adds a span `[start, end]` s of `cat` on `lane` (clipped to the window).
    pub fn add(&mut self, lane: usize, start: f64, end: f64, cat: Category) {
        let w = self.width as f64;
        let x0 = ((start - self.t0) * self.px_per_s).clamp(0.0, w);
        let x1 = ((end - self.t0) * self.px_per_s).clamp(0.0, w);
        if x1.partial_cmp(&x0) != Some(std::cmp::Ordering::Greater) || lane * self.width >= self.cover.len() {
            return;
        }
        self.present[cat.index()] = true;
        let first = x0.floor() as usize;
        let last = (x1.ceil() as usize).min(self.width);
        let row = lane * self.width;
        for col in first..last {
            let overlap = x1.min(col as f64 + 1.0) - x0.max(col as f64);
            if overlap > 0.0 {
                self.cover[row + col][cat.index()] += overlap as f32;
            }
        }
    }

    /// Categories that were added at least once inside the window, in legend order.
    pub fn present(&self) -> Vec<Category> {
        ALL.iter().copied().filter(|c| self.present[c.index()]).collect()
    }

    /// The merged runs, lane by lane, left to right.
    pub fn runs(&self) -> Vec<Run> {
        let lanes = self.cover.len() / self.width;
        let mut runs: Vec<Run> = Vec::new();
        for lane in 0..lanes {
            let mut open: Option<Run> = None;
            for col in 0..self.width {
                let cell = &self.cover[lane * self.width + col];
                let mut best: Option<(usize, f32)> = None;
                for (i, &v) in cell.iter().enumerate() {
                    if v > 0.0 && best.is_none_or(|(_, b)| v > b) {
                        best = Some((i, v));
                    }
                }
                let cat = best.map(|(i, _)| ALL[i]);
                match (&mut open, cat) {
                    (Some(r), Some(c)) if r.cat == c => r.col1 = col + 1,
                    (_, c) => {
                        if let Some(r) = open.take() {
                            runs.push(r);
                        }
                        open = c.map(|cat| Run { lane, col0: col, col1: col + 1, cat });
                    }
                }
            }
            if let Some(r) = open {
                runs.push(r);
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_state_and_what() {
        assert_eq!(Category::of("compute", "experts"), Category::Experts);
        assert_eq!(Category::of("wait", "pp_sendrecv"), Category::PpWait);
        assert_eq!(Category::of("communicate", "ep_alltoall"), Category::EpComm);
        assert_eq!(Category::of("idle", ""), Category::Idle);
        assert!(ALL.iter().enumerate().all(|(i, c)| c.index() == i));
    }

    #[test]
    fn dominant_category_wins_each_column_and_runs_merge() {
        // 10 columns over 10 s: compute 0..6.7 s, TP comm 6.7..7.0, idle 7..10.
        let mut b = Binner::new(1, 10, 0.0, 10.0);
        b.add(0, 0.0, 6.7, Category::Attention);
        b.add(0, 6.7, 7.0, Category::TpComm);
        b.add(0, 7.0, 10.0, Category::Idle);
        let runs = b.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].col0, runs[0].col1, runs[0].cat), (0, 7, Category::Attention));
        assert_eq!((runs[1].col0, runs[1].col1, runs[1].cat), (7, 10, Category::Idle));
        assert_eq!(b.present(), vec![Category::Attention, Category::TpComm, Category::Idle]);
    }

    #[test]
    fn many_tiny_spans_stay_bounded() {
        let mut b = Binner::new(2, 100, 0.0, 1.0);
        for i in 0..100_000 {
            let t = i as f64 * 1e-5;
            let cat = if i % 2 == 0 { Category::Mlp } else { Category::TpWait };
            b.add(i % 2, t, t + 1e-5, cat);
        }
        assert!(b.runs().len() <= 200);
    }
}
