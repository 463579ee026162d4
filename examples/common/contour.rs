//! Shared by the picture examples: level-set segments of a function on a grid (marching
//! squares), to draw density contours with plotters.

/// Line segments of the level set `{f = level}` of `f` on `[x0, x1] × [y0, y1]`, sampled on an
/// `n × n` grid.
pub fn contour(
    f: &dyn Fn(f64, f64) -> f64,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    n: usize,
    level: f64,
) -> Vec<[(f64, f64); 2]> {
    let xs: Vec<f64> = (0..=n)
        .map(|i| x0 + (x1 - x0) * i as f64 / n as f64)
        .collect();
    let ys: Vec<f64> = (0..=n)
        .map(|j| y0 + (y1 - y0) * j as f64 / n as f64)
        .collect();
    let v: Vec<Vec<f64>> = xs
        .iter()
        .map(|&x| ys.iter().map(|&y| f(x, y)).collect())
        .collect();
    let cross = |(xa, ya, fa): (f64, f64, f64), (xb, yb, fb): (f64, f64, f64)| {
        let t = (level - fa) / (fb - fa);
        (xa + t * (xb - xa), ya + t * (yb - ya))
    };
    let mut out = Vec::new();
    for i in 0..n {
        for j in 0..n {
            // Corners counter-clockwise from bottom-left; edges bottom, right, top, left.
            let c = [
                (xs[i], ys[j], v[i][j]),
                (xs[i + 1], ys[j], v[i + 1][j]),
                (xs[i + 1], ys[j + 1], v[i + 1][j + 1]),
                (xs[i], ys[j + 1], v[i][j + 1]),
            ];
            let mut pts = Vec::with_capacity(4);
            for e in 0..4 {
                let (a, b) = (c[e], c[(e + 1) % 4]);
                if (a.2 >= level) != (b.2 >= level) {
                    pts.push(cross(a, b));
                }
            }
            if pts.len() >= 2 {
                out.push([pts[0], pts[1]]);
            }
            if pts.len() == 4 {
                out.push([pts[2], pts[3]]);
            }
        }
    }
    out
}
