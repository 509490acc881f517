//! `UsageRecord`: the original's record dataclass, as a Python class over
//! the core's record. Its attributes are the core's table of fields
//! ([`UsageRecord::FIELDS`]), read and set by each field's kind, so a field
//! added to the record is a Python attribute (and a `to_dict` key) without
//! an edit here; the `.pyi` stub is checked against `UsageRecord.FIELDS`
//! by the tests.

use ai_usage_core::{Currency, FieldSlot, FieldValue, Money, UsageRecord};
use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::IntoPyObjectExt;

/// One recorded AI call, with the original's attributes first (`cost` as a
/// float in `currency`, which is our addition), then the record's other
/// fields in the day-file line's order (token details, ids, labels, provider).
#[pyclass(name = "UsageRecord", module = "ai_usage_monitor", eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyUsageRecord {
    /// The record, its currency settled (a record without one is CNY).
    record: UsageRecord,
}

impl From<&UsageRecord> for PyUsageRecord {
    fn from(r: &UsageRecord) -> Self {
        let mut record = r.clone();
        record.currency = Some(r.currency.unwrap_or_default());
        PyUsageRecord { record }
    }
}

/// The position of field `name` in the record's table.
fn position(name: &str) -> Option<usize> {
    UsageRecord::FIELDS.iter().position(|f| f.name == name)
}

impl PyUsageRecord {
    /// Field `name` as a Python value, by its kind: money as a float, the
    /// currency as its code, the priced flag as a bool (false only when no price
    /// was known), a missing text as `None`.
    fn get_field<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let i = position(name).ok_or_else(|| {
            PyAttributeError::new_err(format!("'UsageRecord' object has no attribute '{name}'"))
        })?;
        match self.record.values()[i] {
            FieldValue::Float(f) => f.into_bound_py_any(py),
            FieldValue::Count(n) => n.into_bound_py_any(py),
            FieldValue::Text(s) => s.into_bound_py_any(py),
            FieldValue::OptText(s) => s.into_bound_py_any(py),
            FieldValue::Flag(b) => b.into_bound_py_any(py),
            FieldValue::Money(m) => m.as_f64().into_bound_py_any(py),
            FieldValue::Currency(c) => c.unwrap_or_default().code().into_bound_py_any(py),
            FieldValue::OptFlag(b) => (b != Some(false)).into_bound_py_any(py),
            FieldValue::List(items) => items.to_vec().into_bound_py_any(py),
        }
    }

    /// Sets field `name` from a Python value, by its kind.
    fn set_field(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = position(name).ok_or_else(|| {
            PyAttributeError::new_err(format!("'UsageRecord' object has no attribute '{name}'"))
        })?;
        let slot = self
            .record
            .slots()
            .into_iter()
            .nth(i)
            .ok_or_else(|| PyAttributeError::new_err(name.to_owned()))?;
        match slot {
            FieldSlot::Float(f) => *f = value.extract()?,
            FieldSlot::Count(n) => *n = value.extract()?,
            FieldSlot::Text(s) => *s = value.extract()?,
            FieldSlot::OptText(s) => *s = value.extract()?,
            FieldSlot::Flag(b) => *b = value.extract()?,
            FieldSlot::Money(m) => {
                let f: f64 = value.extract()?;
                *m = Money::from_f64(f).ok_or_else(|| {
                    PyValueError::new_err(format!("{name} must be a finite amount, got {f}"))
                })?;
            }
            FieldSlot::Currency(c) => {
                let code: String = value.extract()?;
                *c = Some(Currency::new(&code).ok_or_else(|| {
                    PyValueError::new_err(format!("{name} must be a 3-letter code, got {code:?}"))
                })?);
            }
            FieldSlot::OptFlag(b) => {
                let known: bool = value.extract()?;
                *b = (!known).then_some(false);
            }
            FieldSlot::List(items) => *items = value.extract()?,
        }
        Ok(())
    }
}

#[pymethods]
impl PyUsageRecord {
    /// The attribute names, in the day-file line's order.
    #[classattr]
    #[allow(non_snake_case)]
    fn FIELDS(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(PyTuple::new(py, UsageRecord::FIELDS.iter().map(|f| f.name))?.unbind())
    }

    /// Builds a record by hand, with the original dataclass's fields in its
    /// order (and `currency`); every other field is keyword-only.
    #[new]
    #[pyo3(signature = (timestamp, user_id, anchor_id, session_id, model, function,
        input_tokens, output_tokens, total_tokens, cost, duration_ms, success=None,
        error_msg=None, currency=None, **details))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        timestamp: &Bound<'_, PyAny>,
        user_id: &Bound<'_, PyAny>,
        anchor_id: &Bound<'_, PyAny>,
        session_id: &Bound<'_, PyAny>,
        model: &Bound<'_, PyAny>,
        function: &Bound<'_, PyAny>,
        input_tokens: &Bound<'_, PyAny>,
        output_tokens: &Bound<'_, PyAny>,
        total_tokens: &Bound<'_, PyAny>,
        cost: &Bound<'_, PyAny>,
        duration_ms: &Bound<'_, PyAny>,
        success: Option<&Bound<'_, PyAny>>,
        error_msg: Option<&Bound<'_, PyAny>>,
        currency: Option<&Bound<'_, PyAny>>,
        details: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut r = PyUsageRecord::from(&UsageRecord {
            success: true,
            ..UsageRecord::default()
        });
        let given = [
            ("timestamp", Some(timestamp)),
            ("user_id", Some(user_id)),
            ("anchor_id", Some(anchor_id)),
            ("session_id", Some(session_id)),
            ("model", Some(model)),
            ("function", Some(function)),
            ("input_tokens", Some(input_tokens)),
            ("output_tokens", Some(output_tokens)),
            ("total_tokens", Some(total_tokens)),
            ("cost", Some(cost)),
            ("duration_ms", Some(duration_ms)),
            ("success", success),
            ("error_msg", error_msg),
            ("currency", currency),
        ];
        for (name, value) in given {
            if let Some(v) = value {
                r.set_field(name, v)?;
            }
        }
        if let Some(details) = details {
            for (k, v) in details.iter() {
                let name: String = k.extract()?;
                if position(&name).is_none() || given.iter().any(|(g, _)| *g == name) {
                    return Err(PyTypeError::new_err(format!(
                        "UsageRecord() got an unexpected keyword argument '{name}'"
                    )));
                }
                r.set_field(&name, &v)?;
            }
        }
        Ok(r)
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.get_field(py, name)
    }

    fn __setattr__(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_field(name, value)
    }

    fn __dir__(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = UsageRecord::FIELDS.iter().map(|f| f.name).collect();
        names.extend(["to_dict", "FIELDS"]);
        names
    }

    /// The record as a dict: the original's `dataclasses.asdict` keys
    /// first, then every other field, in the day-file line's order.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for f in UsageRecord::FIELDS {
            d.set_item(f.name, self.get_field(py, f.name)?)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let r = &self.record;
        // Python's spelling of optional text: None or a quoted string.
        let opt = |v: &Option<String>| v.as_ref().map_or("None".to_owned(), |s| format!("{s:?}"));
        format!(
            "UsageRecord(timestamp={}, model={:?}, function={:?}, input_tokens={}, \
             output_tokens={}, total_tokens={}, cost={} {}, duration_ms={}, success={}, \
             user_id={}, anchor_id={}, session_id={}, error_msg={}, provider={})",
            r.timestamp,
            r.model,
            r.function,
            r.input_tokens,
            r.output_tokens,
            r.total_tokens,
            r.cost.as_f64(),
            r.currency.unwrap_or_default(),
            r.duration_ms,
            if r.success { "True" } else { "False" },
            opt(&r.user_id),
            opt(&r.anchor_id),
            opt(&r.session_id),
            opt(&r.error_msg),
            opt(&r.provider),
        )
    }
}
