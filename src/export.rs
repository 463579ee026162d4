//! Writing draws to CSV and NPY files (feature `export`), for ArviZ, pandas and NumPy users.
//!
//! Draws are given per chain: `chains[c][t]` is draw `t` of chain `c`, a point of dimension
//! `d` with parameter names `names` (`names.len() == d`).
//!
//! * CSV (long format, one row per draw): columns `chain,draw,<names…>`. pandas:
//!   `pd.read_csv(path)`; ArviZ: `az.from_dataframe` or pivot to `(chain, draw)`.
//! * NPY: one array of shape `(chains, draws, d)`, `<f8`, C order — exactly ArviZ's
//!   `(chain, draw, *shape)` convention: `az.from_dict({"x": np.load(path)})`.

use std::io::Write;

use nalgebra::allocator::Allocator;
use nalgebra::{DefaultAllocator, Dim, OVector};

use crate::error::{Error, Result};

fn io(context: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Io {
        context,
        kind: e.kind(),
    }
}

/// Checks that all chains have the same length and every draw has `names.len()` entries;
/// returns `(chains, draws, d)`.
fn shape<D: Dim>(names: &[&str], chains: &[Vec<OVector<f64, D>>]) -> Result<(usize, usize, usize)>
where
    DefaultAllocator: Allocator<D>,
{
    let draws = chains.first().map_or(0, Vec::len);
    if let Some(c) = chains.iter().find(|c| c.len() != draws) {
        return Err(Error::DimensionMismatch {
            name: "chains",
            expected: draws,
            found: c.len(),
        });
    }
    if let Some(x) = chains.iter().flatten().find(|x| x.len() != names.len()) {
        return Err(Error::DimensionMismatch {
            name: "names",
            expected: x.len(),
            found: names.len(),
        });
    }
    Ok((chains.len(), draws, names.len()))
}

/// Writes the draws as CSV (`chain,draw,<names…>`, one row per draw, full `f64` precision).
///
/// # Errors
///
/// [`Error::DimensionMismatch`] naming `chains` (unequal lengths) or `names` (wrong count);
/// [`Error::Io`] if writing fails.
///
/// # Example
///
/// ```
/// use klflow::export::write_csv;
/// use nalgebra::Vector2;
///
/// let chains = vec![vec![Vector2::new(1.0, 2.0), Vector2::new(3.0, 4.5)]];
/// let mut out = Vec::new();
/// write_csv(&mut out, &["mu", "log_tau"], &chains)?;
/// assert_eq!(String::from_utf8(out).unwrap(), "chain,draw,mu,log_tau\n0,0,1.0,2.0\n0,1,3.0,4.5\n");
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn write_csv<W: Write, D: Dim>(
    writer: W,
    names: &[&str],
    chains: &[Vec<OVector<f64, D>>],
) -> Result<()>
where
    DefaultAllocator: Allocator<D>,
{
    shape(names, chains)?;
    let err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::Io {
            context: "writing CSV",
            kind: e.kind(),
        },
        _ => Error::Io {
            context: "writing CSV",
            kind: std::io::ErrorKind::InvalidData,
        },
    };
    let mut w = csv::Writer::from_writer(writer);
    let mut header = vec!["chain", "draw"];
    header.extend_from_slice(names);
    w.write_record(&header).map_err(err)?;
    let mut row: Vec<String> = Vec::with_capacity(names.len() + 2);
    for (c, chain) in chains.iter().enumerate() {
        for (t, x) in chain.iter().enumerate() {
            row.clear();
            row.push(c.to_string());
            row.push(t.to_string());
            row.extend(x.iter().map(|v| format!("{v:?}")));
            w.write_record(&row).map_err(err)?;
        }
    }
    w.flush().map_err(io("writing CSV"))
}

/// Writes the draws as one NPY array of shape `(chains, draws, d)` (`<f8`, C order).
///
/// # Errors
///
/// As [`write_csv`] (the `names` only fix `d`).
///
/// # Example
///
/// ```
/// use klflow::export::write_npy;
/// use nalgebra::Vector2;
///
/// let chains = vec![vec![Vector2::new(1.0, 2.0)], vec![Vector2::new(3.0, 4.0)]];
/// let mut out = Vec::new();
/// write_npy(&mut out, &["a", "b"], &chains)?;
/// assert_eq!(&out[..6], b"\x93NUMPY");
/// # Ok::<(), klflow::Error>(())
/// ```
pub fn write_npy<W: Write, D: Dim>(
    writer: W,
    names: &[&str],
    chains: &[Vec<OVector<f64, D>>],
) -> Result<()>
where
    DefaultAllocator: Allocator<D>,
{
    let (c, t, d) = shape(names, chains)?;
    let e = io("writing NPY");
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .shape(&[c as u64, t as u64, d as u64])
        .writer(writer)
        .begin_nd()
        .map_err(&e)?;
    for x in chains.iter().flatten() {
        w.extend(x.iter().copied()).map_err(&e)?;
    }
    w.finish().map_err(e)
}
