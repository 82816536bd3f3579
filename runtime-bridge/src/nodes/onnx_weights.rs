//! Reads the constant tensors of one branch of an ONNX model: just enough of the protobuf
//! wire format (ModelProto > GraphProto > NodeProto > AttributeProto > TensorProto) to load
//! the Silero weights without an ONNX runtime.

use std::collections::HashMap;

/// A float tensor: its dims and its values, row-major.
#[derive(Debug)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// Why the bytes are not an ONNX model this reader can take the weights of.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum OnnxError {
    #[error("truncated varint")]
    TruncatedVarint,
    #[error("varint longer than 64 bits")]
    LongVarint,
    #[error("truncated field")]
    TruncatedField,
    #[error("field too long")]
    LongField,
    #[error("unsupported protobuf wire type {0}")]
    WireType(u64),
    #[error("tensor of shape {dims:?} holds {values} values")]
    TensorSize { dims: Vec<usize>, values: usize },
    #[error("no graph in the model")]
    NoGraph,
    #[error("the model has no If node")]
    NoIfNode,
    #[error("the If node has no {0}")]
    NoBranch(String),
    #[error("branch without a graph")]
    BranchWithoutGraph,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    Fixed64,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, OnnxError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(OnnxError::TruncatedVarint)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(OnnxError::LongVarint)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], OnnxError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(OnnxError::TruncatedField)?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next (field number, value), or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, OnnxError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| OnnxError::LongField)?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => return Err(OnnxError::WireType(other)),
        };
        Ok(Some((key >> 3, value)))
    }

    /// Every length-delimited value of field `number`.
    fn all_bytes(buf: &'a [u8], number: u64) -> Result<Vec<&'a [u8]>, OnnxError> {
        let mut r = Reader::new(buf);
        let mut found = Vec::new();
        while let Some((n, f)) = r.field()? {
            if let (true, Field::Bytes(b)) = (n == number, f) {
                found.push(b);
            }
        }
        Ok(found)
    }

    fn string(buf: &'a [u8], number: u64) -> Result<Option<&'a str>, OnnxError> {
        Ok(Self::all_bytes(buf, number)?
            .first()
            .map(|b| std::str::from_utf8(b).unwrap_or_default()))
    }
}

const FLOAT: u64 = 1;

fn tensor(buf: &[u8]) -> Result<Option<Tensor>, OnnxError> {
    let mut r = Reader::new(buf);
    let (mut dims, mut data, mut data_type) = (Vec::new(), Vec::new(), 0);
    while let Some((n, f)) = r.field()? {
        match (n, f) {
            (1, Field::Varint(d)) => dims.push(d as usize),
            (1, Field::Bytes(packed)) => {
                let mut p = Reader::new(packed);
                while p.pos < packed.len() {
                    dims.push(p.varint()? as usize);
                }
            }
            (2, Field::Varint(t)) => data_type = t,
            (4, Field::Fixed32(v)) => data.push(f32::from_bits(v)),
            (4 | 9, Field::Bytes(bytes)) => data.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            _ => {}
        }
    }
    if data_type != FLOAT {
        return Ok(None);
    }
    let expected: usize = dims.iter().product();
    if expected != data.len() {
        return Err(OnnxError::TensorSize {
            dims,
            values: data.len(),
        });
    }
    Ok(Some(Tensor { dims, data }))
}

/// Float constants and initializers of a graph, by name.
fn graph_tensors(graph: &[u8], out: &mut HashMap<String, Tensor>) -> Result<(), OnnxError> {
    for init in Reader::all_bytes(graph, 5)? {
        if let (Some(name), Some(t)) = (Reader::string(init, 8)?, tensor(init)?) {
            out.insert(name.to_string(), t);
        }
    }
    for node in Reader::all_bytes(graph, 1)? {
        if Reader::string(node, 4)? != Some("Constant") {
            continue;
        }
        let Some(name) = Reader::string(node, 2)? else {
            continue;
        };
        for attr in Reader::all_bytes(node, 5)? {
            if let Some(t) = Reader::all_bytes(attr, 5)?.first()
                && let Some(t) = tensor(t)?
            {
                out.insert(name.to_string(), t);
            }
        }
    }
    Ok(())
}

/// The float tensors of the main graph and, if `branch` is given, of that branch
/// (`then_branch`/`else_branch`) of the graph's first `If` node. Names are keyed by their
/// last `__`-separated part, as exporters prefix inlined names.
pub fn load(model: &[u8], branch: Option<&str>) -> Result<HashMap<String, Tensor>, OnnxError> {
    let graph = *Reader::all_bytes(model, 7)?
        .first()
        .ok_or(OnnxError::NoGraph)?;
    let mut tensors = HashMap::new();
    graph_tensors(graph, &mut tensors)?;
    if let Some(branch) = branch {
        let node = Reader::all_bytes(graph, 1)?
            .into_iter()
            .find(|n| matches!(Reader::string(n, 4), Ok(Some("If"))))
            .ok_or(OnnxError::NoIfNode)?;
        let sub = Reader::all_bytes(node, 5)?
            .into_iter()
            .find(|a| matches!(Reader::string(a, 1), Ok(Some(n)) if n == branch))
            .ok_or_else(|| OnnxError::NoBranch(branch.to_owned()))?;
        let g = *Reader::all_bytes(sub, 6)?
            .first()
            .ok_or(OnnxError::BranchWithoutGraph)?;
        graph_tensors(g, &mut tensors)?;
    }
    Ok(tensors
        .into_iter()
        .map(|(k, v)| (k.rsplit("__").next().unwrap_or(&k).to_string(), v))
        .collect())
}
