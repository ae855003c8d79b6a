//! Isolation Forest (Liu, Ting and Zhou, ICDM 2008), the reference detector of the risk
//! benchmark: `trees` random trees, each grown on a subsample of `sample` points by
//! splitting a random feature at a uniform random value until a point is isolated or
//! the height limit ceil(log2(sample)) is reached. A point's anomaly score is
//! 2^(−E[h(x)] / c(sample)), h being its path length (plus c(size) for an unsplit leaf of
//! `size` points), as in the paper and scikit-learn's `IsolationForest`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

enum Node {
    Split {
        feature: usize,
        value: f32,
        left: Box<Node>,
        right: Box<Node>,
    },
    Leaf {
        size: usize,
    },
}

pub struct IsolationForest {
    trees: Vec<Node>,
    sample: usize,
}

/// The average path length of an unsuccessful search in a binary search tree of n points.
fn c(n: usize) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let n = n as f64;
    2.0 * ((n - 1.0).ln() + 0.577_215_664_9) - 2.0 * (n - 1.0) / n
}

impl IsolationForest {
    pub fn fit<const D: usize>(
        points: &[[f32; D]],
        trees: usize,
        sample: usize,
        seed: u64,
    ) -> IsolationForest {
        let mut rng = StdRng::seed_from_u64(seed);
        let sample = sample.min(points.len()).max(2);
        let limit = (sample as f64).log2().ceil() as usize;
        let trees = (0..trees)
            .map(|_| {
                let mut idx: Vec<usize> = (0..sample)
                    .map(|_| rng.random_range(0..points.len().max(1)))
                    .collect();
                grow(points, &mut idx, 0, limit, &mut rng)
            })
            .collect();
        IsolationForest { trees, sample }
    }

    /// The anomaly score in (0, 1]: near 1 is anomalous, under 0.5 normal.
    pub fn score<const D: usize>(&self, x: &[f32; D]) -> f64 {
        let mean: f64 =
            self.trees.iter().map(|t| path(t, x, 0)).sum::<f64>() / self.trees.len().max(1) as f64;
        2f64.powf(-mean / c(self.sample))
    }
}

fn grow<const D: usize>(
    points: &[[f32; D]],
    idx: &mut [usize],
    depth: usize,
    limit: usize,
    rng: &mut StdRng,
) -> Node {
    if idx.len() <= 1 || depth >= limit {
        return Node::Leaf { size: idx.len() };
    }
    // A feature that still varies among these points, tried in random order.
    let start = rng.random_range(0..D);
    for k in 0..D {
        let feature = (start + k) % D;
        let (lo, hi) = idx.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &i| {
            (lo.min(points[i][feature]), hi.max(points[i][feature]))
        });
        if hi > lo {
            let value = lo + rng.random::<f32>() * (hi - lo);
            let mut split = 0;
            for j in 0..idx.len() {
                if points[idx[j]][feature] < value {
                    idx.swap(j, split);
                    split += 1;
                }
            }
            let (left, right) = idx.split_at_mut(split);
            return Node::Split {
                feature,
                value,
                left: Box::new(grow(points, left, depth + 1, limit, rng)),
                right: Box::new(grow(points, right, depth + 1, limit, rng)),
            };
        }
    }
    Node::Leaf { size: idx.len() }
}

fn path<const D: usize>(node: &Node, x: &[f32; D], depth: usize) -> f64 {
    match node {
        Node::Leaf { size } => depth as f64 + c(*size),
        Node::Split {
            feature,
            value,
            left,
            right,
        } => {
            if x[*feature] < *value {
                path(left, x, depth + 1)
            } else {
                path(right, x, depth + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outlier_scores_above_the_crowd() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut points: Vec<[f32; 2]> = (0..1000)
            .map(|_| [rng.random::<f32>(), rng.random::<f32>()])
            .collect();
        points.push([8.0, 8.0]);
        let forest = IsolationForest::fit(&points, 100, 256, 7);
        let outlier = forest.score(&[8.0, 8.0]);
        let inlier = forest.score(&[0.5, 0.5]);
        assert!(outlier > 0.6 && inlier < 0.5, "{outlier} {inlier}");
    }
}
